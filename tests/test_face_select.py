"""Choosing faces: largest by real area, index in a stated order, reference similarity, all."""
from __future__ import annotations

import numpy as np
import pytest

from test_face_support import detected, mediapipe_available

from faceadapter_suite.core.errors import NoFaceError
from faceadapter_suite.face import select
from faceadapter_suite.face.records import Face, FaceBatch, FrameFaces


def _face(x1, y1, x2, y2, score=0.9, embedding=None, track=None) -> Face:
    kps = np.array([[x1 + 0.3 * (x2 - x1), y1 + 0.4 * (y2 - y1)], [x1 + 0.7 * (x2 - x1), y1 + 0.4 * (y2 - y1)],
                    [(x1 + x2) / 2, y1 + 0.6 * (y2 - y1)], [x1 + 0.35 * (x2 - x1), y1 + 0.8 * (y2 - y1)],
                    [x1 + 0.65 * (x2 - x1), y1 + 0.8 * (y2 - y1)]], np.float32)
    emb = None if embedding is None else np.asarray(embedding, np.float32) / np.linalg.norm(embedding)
    return Face(bbox=np.array([x1, y1, x2, y2], np.float32), score=score, kps5=kps, embedding=emb, track_id=track)


def _batch(*frames) -> FaceBatch:
    return FaceBatch(frames=tuple(FrameFaces(height=500, width=500, faces=tuple(f)) for f in frames))


def test_largest_uses_real_area_not_the_upstream_key():
    # Upstream sorts by (x2-x1)*y2 - y1: the low, wide-enough face would win there.
    tall = _face(10, 10, 110, 140)  # area 13000; upstream key 100*140-10 = 13990
    low = _face(300, 380, 390, 480)  # area 9000;  upstream key 90*480-380 = 42820
    chosen = select.select_faces(_batch([low, tall]), "largest")
    assert chosen.frames[0].faces == (tall,) and chosen.found() == (True,)


@pytest.mark.parametrize("order,expected", [("left_to_right", [0, 1, 2]), ("right_to_left", [2, 1, 0]),
                                            ("top_to_bottom", [1, 2, 0]), ("large_to_small", [2, 0, 1]),
                                            ("small_to_large", [1, 0, 2]), ("score", [1, 0, 2])])
def test_orders(order, expected):
    faces = (_face(0, 200, 50, 250, 0.8), _face(100, 0, 140, 40, 0.95), _face(200, 100, 300, 200, 0.6))
    assert select.order_indices(faces, order) == expected
    chosen = select.select_faces(_batch(faces), "index", order=order, index=1)
    assert chosen.frames[0].faces == (faces[expected[1]],)


def test_index_out_of_range_is_missing_and_all_keeps_everything():
    faces = (_face(0, 0, 50, 50), _face(100, 0, 150, 50))
    chosen = select.select_faces(_batch(faces, ()), "index", index=5)
    assert chosen.found() == (False, False) and chosen.missing() == [0, 1]
    chosen = select.select_faces(_batch(faces, ()), "all")
    assert len(chosen.frames[0].faces) == 2 and chosen.found() == (True, False)


def test_reference_by_embedding_and_absent_reference():
    alice, bob = [1, 0, 0, 0], [0, 1, 0, 0]
    frames = ([_face(0, 0, 80, 80, embedding=bob), _face(200, 0, 260, 60, embedding=alice)],
              [_face(0, 0, 80, 80, embedding=bob)])
    reference = _batch([_face(10, 10, 90, 90, embedding=[0.9, 0.1, 0, 0])])
    chosen = select.select_faces(_batch(*frames), "reference", reference=reference, follow_track=False)
    assert chosen.frames[0].faces[0].embedding[0] == 1.0, "the face most like the reference"
    assert chosen.found() == (True, False), "the reference person is absent from frame 1"
    with pytest.raises(NoFaceError, match=r"frame\(s\) 1 of 2"):
        select.select_faces(_batch(*frames), "reference", reference=reference, follow_track=False, on_missing="error")
    with pytest.raises(NoFaceError, match="reference image has no face"):
        select.select_faces(_batch(*frames), "reference", reference=_batch([]))


def test_follow_track_keeps_the_first_choice():
    # Frame 0: A (track 0) is larger; frame 1: B grows larger, but "largest" keeps following A.
    f0 = [_face(0, 0, 100, 100, track=0), _face(200, 0, 260, 60, track=1)]
    f1 = [_face(0, 0, 90, 90, track=0), _face(200, 0, 330, 130, track=1)]
    f2 = [_face(200, 0, 330, 130, track=1)]
    chosen = select.select_faces(_batch(f0, f1, f2), "largest")
    assert [fr.faces[0].track_id if fr.faces else None for fr in chosen.frames] == [0, 0, None]
    assert chosen.found() == (True, True, False)
    report = select.status_report(chosen)
    assert "frame 2: missing" in report and "2/3 frames" in report
    chosen = select.select_faces(_batch(f0, f1, f2), "largest", follow_track=False)
    assert [fr.faces[0].track_id for fr in chosen.frames] == [0, 1, 1]


@mediapipe_available
def test_geometric_similarity_tells_real_people_apart():
    hopper = detected("grace_hopper").faces[0]
    astronaut = detected("astronaut").faces[0]
    same, metric = select.face_similarity(hopper, hopper)
    other, _ = select.face_similarity(hopper, astronaut)
    assert metric == "mesh" and same == pytest.approx(1.0) and other < select.DEFAULT_THRESHOLDS["mesh"]
    reference = FaceBatch(frames=(detected("grace_hopper"),))
    frames = FaceBatch(frames=(detected("astronaut"), detected("grace_hopper")))
    chosen = select.select_faces(frames, "reference", reference=reference)
    assert chosen.found() == (False, True)
