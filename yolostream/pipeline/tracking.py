"""ByteTrack multi-object tracking: a `StreamTracker` per stream gives detections stable ``tracker_id``s.

ByteTrack (Zhang et al., 2022) in brief: a constant-velocity Kalman filter predicts every track; confident
detections are matched to tracks first, then the low-confidence leftovers are matched to the tracks still
unmatched (occluded objects often score low), so a track survives a dip in confidence without the low
detections ever starting tracks of their own. Unmatched tracks wait ``lost_buffer`` frames to be found again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from yolostream.detections import Detections
from yolostream.errors import ConfigError
from yolostream.pipeline.frames import FrameResult


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair: ``a`` [M, 4] and ``b`` [N, 4] ``[x1, y1, x2, y2]`` -> float64 [M, N]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def assign(cost: np.ndarray, max_cost: float, exact: bool | None = None) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` of a minimum-cost one-to-one matching; pairs costing more than ``max_cost`` are dropped.

    ``exact=None`` uses scipy's Hungarian solver when scipy is installed and a greedy matcher
    (cheapest pair first) otherwise; True/False force one. Greedy differs from Hungarian only when
    two tracks compete for the same detection, which the IoU gate makes rare.
    """
    if cost.size == 0:
        return []
    if exact is None or exact:
        try:
            from scipy.optimize import linear_sum_assignment
        except ImportError:
            if exact:
                raise
        else:
            # Gated pairs get a prohibitive cost so the solver never trades a good pair for one of them.
            gated = np.where(cost > max_cost, max_cost + 1e6, cost)
            rows, cols = linear_sum_assignment(gated)
            return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= max_cost]
    pairs, used_r, used_c = [], set(), set()
    for flat in np.argsort(cost, axis=None, kind="stable"):
        r, c = divmod(int(flat), cost.shape[1])
        if cost[r, c] > max_cost:
            break
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return sorted(pairs)


class BoxKalman:
    """Constant-velocity Kalman filter on ``[cx, cy, w/h, h]`` plus velocities (pixels per frame).

    Batched: means are float64 [K, 8], covariances [K, 8, 8]. Noise scales with box height so that a
    large near object and a small far one are equally certain in relative terms.
    """

    def __init__(self, std_pos: float = 1 / 20, std_vel: float = 1 / 160) -> None:
        self.std_pos, self.std_vel = std_pos, std_vel
        self._f = np.eye(8)
        self._f[:4, 4:] = np.eye(4)

    def _std(self, h: np.ndarray, pos: float, aspect: float, vel: float, aspect_vel: float) -> np.ndarray:
        p, v = self.std_pos * h * pos, self.std_vel * h * vel
        return np.stack([p, p, np.full_like(h, aspect), p, v, v, np.full_like(h, aspect_vel), v], axis=1)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks at measurements ``z`` [K, 4] (xyah) with zero velocity and a wide velocity prior."""
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        std = self._std(z[:, 3], 2.0, 1e-2, 10.0, 1e-5)
        return mean, _diag(std**2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead."""
        q = _diag(self._std(mean[:, 3], 1.0, 1e-2, 1.0, 1e-5) ** 2)
        return mean @ self._f.T, self._f @ cov @ self._f.T + q

    def update(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct with measurements ``z`` [K, 4] (xyah)."""
        h = mean[:, 3]
        r = np.stack([self.std_pos * h, self.std_pos * h, np.full_like(h, 1e-1), self.std_pos * h], 1)
        s = cov[:, :4, :4] + _diag(r**2)  # innovation covariance [K, 4, 4]
        pht = cov[:, :, :4]  # P H^T [K, 8, 4]
        gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # S symmetric: K = P H^T S^-1
        mean = mean + np.einsum("kij,kj->ki", gain, z - mean[:, :4])
        cov = cov - gain @ s @ gain.transpose(0, 2, 1)
        return mean, cov


def _diag(v: np.ndarray) -> np.ndarray:
    out = np.zeros((*v.shape, v.shape[-1]))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``[x1, y1, x2, y2]`` [K, 4] -> ``[cx, cy, w/h, h]`` (height floored at 1e-3 px to keep w/h finite)."""
    wh = xyxy[:, 2:] - xyxy[:, :2]
    h = np.maximum(wh[:, 1], 1e-3)
    return np.stack([xyxy[:, 0] + wh[:, 0] / 2, xyxy[:, 1] + wh[:, 1] / 2, wh[:, 0] / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Inverse of `xyxy_to_xyah`."""
    w, h = xyah[:, 2] * xyah[:, 3], xyah[:, 3]
    return np.stack([xyah[:, 0] - w / 2, xyah[:, 1] - h / 2, xyah[:, 0] + w / 2, xyah[:, 1] + h / 2], 1)


@dataclass(eq=False)
class _Track:
    mean: np.ndarray  # [8]
    cov: np.ndarray  # [8, 8]
    last_frame: int  # tracker frame of the last matched detection
    track_id: int | None = None  # given on confirmation, so IDs of reported tracks are 1, 2, 3, ...
    lost: bool = False


class StreamTracker:
    """ByteTrack for one stream; call `update` once per processed frame, in order.

    Args:
        frame_rate: rate at which `update` is called (frames actually processed, after any dropping).
        track_thresh: detections with ``conf >= track_thresh`` are "high" (first association, may start
            tracks); ``low_thresh <= conf < track_thresh`` only extend existing tracks.
        match_thresh: largest cost ``1 - IoU * conf`` accepted in the first association.
        lost_buffer: frames (at 30 fps; scaled by ``frame_rate / 30``) a lost track waits to be found again.
        new_track_thresh: least confidence to start a track; default ``track_thresh + 0.1`` as in ByteTrack.
        low_thresh: detections below it are ignored.

    A new track is reported from its second consecutive detection (a one-frame false positive never gets
    an ID), except on the very first frame, where every confident detection starts a confirmed track.
    Feed it detections thresholded at ``low_thresh`` (not higher) to benefit from the second association.
    """

    def __init__(
        self,
        frame_rate: float = 30,
        track_thresh: float = 0.25,
        match_thresh: float = 0.8,
        lost_buffer: int = 30,
        new_track_thresh: float | None = None,
        low_thresh: float = 0.1,
    ) -> None:
        new_track_thresh = track_thresh + 0.1 if new_track_thresh is None else new_track_thresh
        checks = {
            "frame_rate": (frame_rate, frame_rate > 0),
            "track_thresh": (track_thresh, 0 <= track_thresh <= 1),
            "match_thresh": (match_thresh, 0 < match_thresh <= 1),
            "lost_buffer": (lost_buffer, lost_buffer >= 0),
            "new_track_thresh": (new_track_thresh, 0 <= new_track_thresh <= 1),
            "low_thresh": (low_thresh, 0 <= low_thresh <= track_thresh),
        }
        for key, (value, ok) in checks.items():
            if not ok:
                raise ConfigError(f"tracker: invalid {key}={value!r}")
        self.track_thresh, self.match_thresh, self.low_thresh = track_thresh, match_thresh, low_thresh
        self.new_track_thresh = new_track_thresh
        self.max_lost = int(frame_rate / 30 * lost_buffer)
        self.kalman = BoxKalman()
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart IDs at 1."""
        self._tracks: list[_Track] = []
        self._frame = 0
        self._next_id = 1

    def update(self, det: Detections) -> Detections:
        """Track one frame: the rows of ``det`` that belong to a reported track, with ``tracker_id`` set.

        Rows keep their detected boxes (not the filter's smoothed ones) and their order.
        """
        self._frame += 1
        boxes = det.xyxy.detach().cpu().numpy().astype(np.float64)
        conf = det.conf.detach().cpu().numpy().astype(np.float64)
        high = np.flatnonzero(conf >= self.track_thresh)
        low = np.flatnonzero((conf >= self.low_thresh) & (conf < self.track_thresh))
        self._predict()
        out: dict[int, int] = {}  # detection row -> track id

        # 1) confirmed tracks (tracked and lost) vs confident detections, cost fused with confidence.
        pool = [t for t in self._tracks if t.track_id is not None]
        pairs, rest_t, rest_d = self._match(pool, boxes, high, self.match_thresh, conf)
        self._hit([(pool[ti], di) for ti, di in pairs], boxes, out)
        # 2) tracks still tracked (not lost) vs low-confidence detections, plain IoU.
        active = [pool[i] for i in rest_t if not pool[i].lost]
        pairs, rest_a, _ = self._match(active, boxes, low, 0.5, None)
        self._hit([(active[ti], di) for ti, di in pairs], boxes, out)
        for i in rest_a:
            active[i].lost = True
        # 3) unconfirmed tracks (one hit so far) vs confident leftovers: a second hit confirms them.
        fresh = [t for t in self._tracks if t.track_id is None]
        pairs, rest_f, rest_d = self._match(fresh, boxes, rest_d, 0.7, conf)
        self._hit([(fresh[ti], di) for ti, di in pairs], boxes, out)
        dead = {id(fresh[i]) for i in rest_f}
        dead |= {id(t) for t in self._tracks if t.lost and self._frame - t.last_frame > self.max_lost}
        self._tracks = [t for t in self._tracks if id(t) not in dead]
        # 4) confident unmatched detections start tracks.
        starts = rest_d[conf[rest_d] >= self.new_track_thresh]
        if starts.size:
            means, covs = self.kalman.initiate(xyxy_to_xyah(boxes[starts]))
            for di, m, c in zip(starts.tolist(), means, covs, strict=True):
                track = _Track(m, c, self._frame)
                self._tracks.append(track)
                if self._frame == 1:
                    self._confirm(track, out, di)
        self._drop_duplicates()

        rows = sorted(out)
        kept = det[torch.tensor(rows, dtype=torch.long)]
        return kept.with_tracker_id(torch.tensor([out[r] for r in rows], dtype=torch.int64))

    def _predict(self) -> None:
        if not self._tracks:
            return
        mean = np.stack([t.mean for t in self._tracks])
        cov = np.stack([t.cov for t in self._tracks])
        lost = np.array([t.lost for t in self._tracks])
        mean[lost, 7] = 0.0  # a lost box keeps its size: extrapolating height growth blindly diverges
        mean, cov = self.kalman.predict(mean, cov)
        for t, m, c in zip(self._tracks, mean, cov, strict=True):
            t.mean, t.cov = m, c

    def _match(
        self, tracks: list[_Track], boxes: np.ndarray, rows: np.ndarray, max_cost: float, conf: np.ndarray | None
    ) -> tuple[list[tuple[int, int]], list[int], np.ndarray]:
        """Match ``tracks`` to detection ``rows``; returns (track idx, det row) pairs, unmatched tracks, rows."""
        if not tracks or rows.size == 0:
            return [], list(range(len(tracks))), rows
        track_boxes = xyah_to_xyxy(np.stack([t.mean[:4] for t in tracks]))
        sim = iou_matrix(track_boxes, boxes[rows])
        if conf is not None:
            sim = sim * conf[rows][None, :]
        pairs = assign(1.0 - sim, max_cost)
        matched_t = {p[0] for p in pairs}
        matched_d = {p[1] for p in pairs}
        rest_t = [i for i in range(len(tracks)) if i not in matched_t]
        rest_d = np.array([r for j, r in enumerate(rows.tolist()) if j not in matched_d], dtype=np.int64)
        return [(ti, int(rows[dj])) for ti, dj in pairs], rest_t, rest_d

    def _hit(self, matches: list[tuple[_Track, int]], boxes: np.ndarray, out: dict[int, int]) -> None:
        """Correct each matched track with its detection row (one batched filter update)."""
        if not matches:
            return
        mean = np.stack([t.mean for t, _ in matches])
        cov = np.stack([t.cov for t, _ in matches])
        rows = [r for _, r in matches]
        mean, cov = self.kalman.update(mean, cov, xyxy_to_xyah(boxes[rows]))
        for (track, row), m, c in zip(matches, mean, cov, strict=True):
            track.mean, track.cov = m, c
            track.last_frame, track.lost = self._frame, False
            self._confirm(track, out, row)

    def _confirm(self, track: _Track, out: dict[int, int], row: int) -> None:
        if track.track_id is None:
            track.track_id = self._next_id
            self._next_id += 1
        out[row] = track.track_id

    def _drop_duplicates(self) -> None:
        """A lost track whose prediction sits on a live track is the same object: drop the lost one."""
        live = [t for t in self._tracks if t.track_id is not None and not t.lost]
        lost = [t for t in self._tracks if t.lost]
        if not live or not lost:
            return
        boxes = [xyah_to_xyxy(np.stack([t.mean[:4] for t in ts])) for ts in (live, lost)]
        dup = (iou_matrix(boxes[1], boxes[0]) > 0.85).any(axis=1)
        gone = {id(t) for t, d in zip(lost, dup, strict=True) if d}
        self._tracks = [t for t in self._tracks if id(t) not in gone]


class Trackers:
    """One `StreamTracker` per stream name, made on first use with the same settings.

    ``frame_rates`` overrides ``frame_rate`` for the streams it names.
    """

    def __init__(
        self,
        frame_rate: float = 30,
        track_thresh: float = 0.25,
        match_thresh: float = 0.8,
        lost_buffer: int = 30,
        frame_rates: Mapping[str, float] | None = None,
    ) -> None:
        self._kwargs = {"track_thresh": track_thresh, "match_thresh": match_thresh, "lost_buffer": lost_buffer}
        self._frame_rate = frame_rate
        self._frame_rates = dict(frame_rates or {})
        StreamTracker(frame_rate, **self._kwargs)  # validate now, not on the first frame
        self._trackers: dict[str, StreamTracker] = {}

    def __getitem__(self, stream: str) -> StreamTracker:
        if stream not in self._trackers:
            rate = self._frame_rates.get(stream, self._frame_rate)
            self._trackers[stream] = StreamTracker(rate, **self._kwargs)
        return self._trackers[stream]

    def update(self, stream: str, det: Detections) -> Detections:
        """`StreamTracker.update` of ``stream``'s tracker."""
        return self[stream].update(det)

    def process(self, result: FrameResult) -> FrameResult:
        """The same result with its detections replaced by the tracked ones."""
        return replace(result, detections=self.update(result.frame.stream, result.detections))

    def reset(self, stream: str | None = None) -> None:
        """Forget one stream's tracks (say, after its source reconnected), or every stream's."""
        if stream is None:
            self._trackers.clear()
        else:
            self._trackers.pop(stream, None)
