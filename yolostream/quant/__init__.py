"""INT8 post-training quantization: calibration pictures, PT2E with the x86 Inductor quantizer, the accuracy gate."""
