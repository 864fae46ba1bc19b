"""Post-processing chains (SPEC §6.1, §6.2, §6.4): OpenCV reference vs the torch form."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cam.postprocess import normalize_scoremap, postprocess_maps


def _random_maps(side: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, side, side)).astype(np.float32)


@pytest.mark.parametrize("side", [5, 7, 14, 28])
@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_torch_form_matches_opencv_form(side: int, method: str) -> None:
    """SPEC §7.11: the batched torch chain equals the OpenCV chain up to float32 rounding."""
    maps = _random_maps(side, seed=side)
    reference = postprocess_maps(maps, method, "opencv")
    batched = postprocess_maps(torch.from_numpy(maps), method, "torch")
    assert isinstance(reference, np.ndarray)
    assert isinstance(batched, torch.Tensor)
    assert reference.shape == batched.shape == (4, 224, 224)
    assert reference.dtype == np.float32
    assert batched.dtype == torch.float32
    np.testing.assert_allclose(batched.numpy(), reference, rtol=0, atol=1e-5)


def test_cam_chain_is_bicubic_without_relu() -> None:
    """SPEC §6.1: bicubic resize of the raw map, then §6.4; negative values are kept."""
    raw = _random_maps(7, seed=1)
    expected = [cv2.resize(m, (224, 224), interpolation=cv2.INTER_CUBIC) for m in raw]
    expected = np.stack([(m - m.min()) / (m - m.min()).max() for m in expected])
    np.testing.assert_array_equal(postprocess_maps(raw, "cam"), expected.astype(np.float32))


def test_gradient_chain_discards_negative_evidence() -> None:
    """SPEC §6.2: the ReLU comes first, so a map with no positive value becomes all zero."""
    negative = -np.abs(_random_maps(7, seed=2))
    for backend in ("opencv", "torch"):
        out = postprocess_maps(torch.from_numpy(negative), "layercam", backend)
        assert float(np.abs(np.asarray(out)).max()) == 0.0


def test_same_size_cubic_resize_is_identity() -> None:
    """The 224→224 INTER_CUBIC step of OFF's chain is an exact copy, so the chain omits it."""
    scoremap = _random_maps(224, seed=3)[0]
    resized = cv2.resize(scoremap, (224, 224), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(resized, scoremap)


def test_normalize_scoremap_rules() -> None:
    """SPEC §6.4: NaN or constant maps become zeros; otherwise min 0 and max exactly 1."""
    assert not normalize_scoremap(np.full((4, 4), 3.0, np.float32)).any()
    with_nan = np.arange(16, dtype=np.float32).reshape(4, 4)
    with_nan[1, 2] = np.nan
    assert not normalize_scoremap(with_nan).any()
    out = normalize_scoremap(_random_maps(9, seed=4)[0])
    assert out.dtype == np.float32
    assert out.min() == 0.0
    assert out.max() == 1.0
    special = np.stack([np.full((7, 7), 2.0, np.float32), _random_maps(7, seed=6)[0]])
    special[1, 3, 3] = np.nan
    for method in ("cam", "gradcam"):
        for backend in ("opencv", "torch"):
            assert not np.asarray(
                postprocess_maps(torch.from_numpy(special), method, backend)
            ).any()


def test_invalid_arguments_raise() -> None:
    maps = _random_maps(7, seed=5)
    with pytest.raises(ValueError, match="backend"):
        postprocess_maps(maps, "cam", "scipy")
    with pytest.raises(ValueError, match="unknown CAM method"):
        postprocess_maps(maps, "scorecam")
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        postprocess_maps(maps[0], "cam")
