"""`yolostream bench`: eager vs compiled (and ONNX Runtime / OpenVINO) measured in one run.

The flow: `suite.run_suite` loads one detector per configuration (mode x dtype x batch), times it with
`measure`, summarises with `stats`, compares its outputs with eager fp32 (`accuracy`), and `report`
prints the table and writes the JSON and PNG files. Nothing here runs on import.
"""
