"""One on_missing policy (face.records.ON_MISSING) with one check and one error, used by selection."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import PACK  # noqa: F401

from faceadapter_suite.core.errors import NoFaceError
from faceadapter_suite.face import records, select
from faceadapter_suite.face.records import Face, FaceBatch, FrameFaces


def _batch(*counts: int) -> FaceBatch:
    face = Face(bbox=np.array([0, 0, 50, 50], np.float32), score=0.9, kps5=np.zeros((5, 2), np.float32))
    return FaceBatch(frames=tuple(FrameFaces(100, 100, (face,) * n) for n in counts))


def test_policy_names_and_check():
    assert records.ON_MISSING == ("pass_through", "error")
    for name in records.ON_MISSING:
        assert records.check_on_missing(name) == name
    with pytest.raises(ValueError, match="pass_through, error.*'skip'"):
        records.check_on_missing("skip")


def test_error_names_side_frames_and_the_way_out():
    records.raise_on_missing("pass_through", [1, 2], 3, side="target")  # nothing to do
    records.raise_on_missing("error", [], 3)  # nothing missing
    with pytest.raises(NoFaceError, match=r"no source face in frame\(s\) 2 of 5 .*on_missing to 'pass_through'"):
        records.raise_on_missing("error", [2], 5, side="source")
    with pytest.raises(NoFaceError, match=r"frame\(s\) 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 \.\.\. of 12"):
        records.raise_on_missing("error", range(12), 12)
    with pytest.raises(ValueError, match="on_missing must be one of"):
        records.raise_on_missing("ignore", [1], 3)


def test_selection_uses_the_shared_policy():
    with pytest.raises(ValueError, match="on_missing must be one of pass_through, error"):
        select.select_faces(_batch(1, 1), on_missing="drop")
    with pytest.raises(NoFaceError, match=r"no face matching 'largest' in frame\(s\) 1 of 3"):
        select.select_faces(_batch(1, 0, 2), on_missing="error")
    chosen, status = select.select_faces(_batch(1, 0, 2), on_missing="pass_through")
    assert status.found == (True, False, True) and [len(f.faces) for f in chosen.frames] == [1, 0, 1]
