"""FaceX region swap on real photos (mesh regions): the donor's lips / eyes land on the target's, aligned on
those regions' landmarks; outside the blend mask the target's crop is untouched, and Paste Faces puts the crop
back into the target photo changing only that region. Regions the mesh cannot draw are refused by name."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceadapter_suite.core.images import uint8_to_image
from faceadapter_suite.face.analysis import detect_batch, load_analyzer
from faceadapter_suite.face.records import transform_points
from faceadapter_suite.face.sample_photos import load_sample
from faceadapter_suite.facex.region_swap import ALIGN_POINTS, crop_points, swap_regions
from faceadapter_suite.facex.regions import REGION_NAMES
from faceadapter_suite.nodes import face_analysis, facex as facex_nodes
from faceadapter_suite.spatial.mesh_topology import interocular
from faceadapter_suite.spatial.projectors import MeshProjector


@pytest.fixture(scope="module")
def faces():
    analyzer = load_analyzer("mediapipe")
    out = {}
    for name in ("grace_hopper", "astronaut"):
        image = uint8_to_image(load_sample(name))
        out[name] = (image, facex_nodes.FaceXDecompose().decompose(image, detect_batch(analyzer, image),
                                                                   MeshProjector(), 0, 0, 0.81,
                                                                   facex_nodes.MESH_REGIONS)[0])
    return out


def choose(*names):
    return {name: name in names for name in REGION_NAMES}


@pytest.mark.parametrize("regions", [("lips",), ("brows", "eyes")])
def test_donor_regions_land_on_the_target_regions(faces, regions):
    (photo, target), (_, donor) = faces["grace_hopper"], faces["astronaut"]
    crop, mask, matrix = swap_regions(target, donor, regions, feather=8.0, color_match=False)
    index = sorted({i for r in regions for i in ALIGN_POINTS[r]})
    moved = transform_points(crop_points(donor)[index], matrix)
    aim = crop_points(target)[index]
    residual = float(np.linalg.norm(moved - aim, axis=1).mean()) / interocular(crop_points(target))
    print(f"{'+'.join(regions)}: mean landmark residual after alignment {residual:.3f} inter-ocular distances")
    assert residual < 0.08
    base = target.view.crop512.astype(np.float32) / 255.0
    outside = mask == 0
    assert np.array_equal(crop[outside], base[outside]), "outside the blend the target crop is untouched"
    assert 0.003 < (mask > 0.5).mean() < 0.1 and np.abs(crop - base).max() > 0.2

    out_crop, out_mask, transforms, preview = facex_nodes.FaceXRegionSwap().swap(
        target, donor, 8, False, **choose(*regions))
    assert torch.equal(out_crop[0], torch.from_numpy(crop)) and preview.shape == (1, 512, 512, 3)
    pasted, weights = face_analysis.FaceAdapterPasteFaces().paste(photo, out_crop, transforms, 0, "off", True, out_mask)
    changed = (pasted - photo).abs().amax(-1)[0] > 2 / 255
    assert pasted.shape == photo.shape and changed.any() and bool((weights[0][changed] > 0).all())


def test_regions_the_mesh_cannot_draw_are_named(faces):
    (_, target), (_, donor) = faces["grace_hopper"], faces["astronaut"]
    with pytest.raises(ValueError, match="regions come from mediapipe_mesh, which has no hair"):
        facex_nodes.FaceXRegionSwap().swap(target, donor, 8, True, **choose("eyes", "hair"))
    with pytest.raises(ValueError, match="choose at least one region"):
        facex_nodes.FaceXRegionSwap().swap(target, donor, 8, True, **choose())
