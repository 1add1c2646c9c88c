"""Per-cell metrics: equal to reference implementations, perfect on identical images, masks respected."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from evaluation import metrics as M
from methods.core.runner import run_comparison
from methods.core.spec import EditInputs
from tests.conftest import center_mask, make_photo
from tests.helpers import weights_checksum

PROMPTS = ("a red car", "a photo of a cat", "a house in the snow", "sunset over the sea", "an orange")


class _TensorFeatures:
    """transformers 5's get_*_features return model outputs; torchmetrics 1.9 expects tensors."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def to(self, device):
        return self

    def get_image_features(self, *args, **kwargs):
        return self.model.get_image_features(*args, **kwargs).pooler_output

    def get_text_features(self, *args, **kwargs):
        return self.model.get_text_features(*args, **kwargs).pooler_output


def _noise_inside(image: Image.Image, mask: Image.Image, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    inside = np.asarray(mask)[..., None] > 127
    noise = rng.integers(0, 256, (*inside.shape[:2], 3), dtype=np.uint8)
    return Image.fromarray(np.where(inside, noise, np.asarray(image)).astype(np.uint8))


def test_clip_score_equals_torchmetrics_and_clip_forward(backbone, photo):
    """Our CLIP score = torchmetrics' formula (its update step, fed our model) = CLIPModel's own logits."""
    from torchmetrics.functional.multimodal import clip_score as tm_clip_score
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update

    model, processor = backbone.addon("metric_clip")
    pixels = torch.from_numpy(np.array(photo)).permute(2, 0, 1)
    raw = []
    for prompt in PROMPTS:
        ours = M.clip_similarity(backbone, photo, prompt)
        unclamped, _ = _clip_score_update(pixels, prompt, _TensorFeatures(model), processor)
        clamped = tm_clip_score(pixels, prompt, model_name_or_path=lambda: (_TensorFeatures(model), processor))
        inputs = processor(text=[prompt], images=[photo], return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = model(**inputs).logits_per_image[0, 0] / model.logit_scale.exp() * 100
        assert ours == pytest.approx(float(unclamped), abs=1e-3)
        assert ours == pytest.approx(float(logits), abs=1e-3)
        assert M.clip_score(backbone, photo, prompt) == pytest.approx(float(clamped), abs=1e-3)
        assert M.clip_score(backbone, photo, prompt) == max(ours, 0.0)
        raw.append(ours)
    # The tiny CLIP's seed makes the cosines take both signs, so the clamp is exercised both ways
    # (measured: 28.7, 21.1, -25.2, -5.1, 10.6).
    assert min(raw) < 0 < max(raw)


def test_clip_directional_equals_hand_computed(backbone, photo):
    model, processor = backbone.addon("metric_clip")
    edited = make_photo(seed=7).rotate(90)
    inputs = processor(
        text=["a house on a meadow", "a red car"], images=[photo, edited], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        out = model(**inputs)
    image_dir = out.image_embeds[1] / out.image_embeds[1].norm() - out.image_embeds[0] / out.image_embeds[0].norm()
    text_dir = out.text_embeds[1] / out.text_embeds[1].norm() - out.text_embeds[0] / out.text_embeds[0].norm()
    expected = float(F.cosine_similarity(image_dir, text_dir, dim=0))
    value = M.clip_directional(backbone, photo, edited, "a house on a meadow", "a red car")
    assert value == pytest.approx(expected, abs=1e-5)
    scores = M.score_cell(backbone, photo, edited, "a red car", "a house on a meadow", metrics=("clip_directional",))
    assert scores["clip_directional"] == pytest.approx(expected, abs=1e-5)
    # An unchanged image has no direction: the metric is left out, not invented.
    assert "clip_directional" not in M.score_cell(backbone, photo, photo, "a red car", "a house")


def test_ssim_and_psnr_equal_torchmetrics(photo):
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    edited = make_photo(seed=5)
    a, b = M.to_tensor(photo), M.to_tensor(edited)
    assert M.ssim(photo, edited) == pytest.approx(float(structural_similarity_index_measure(b, a, data_range=1.0)))
    assert M.psnr(photo, edited) == pytest.approx(float(peak_signal_noise_ratio(b, a, data_range=1.0)), abs=1e-4)


def test_psnr_and_masked_psnr_by_hand():
    """16x16 black image; one pixel set to 51 in all channels: MSE = 0.2^2 / 256 (whole image).

    Tolerance 1e-5 dB: the images are converted to float32 (51 / 255 = 0.2 + 3e-9).
    """
    source = Image.new("RGB", (16, 16))
    edited = source.copy()
    edited.putpixel((3, 3), (51, 51, 51))
    assert M.psnr(source, edited) == pytest.approx(10 * math.log10(256 / 0.2**2), abs=1e-5)
    # A mask over the left half (x < 8): the changed pixel is outside, among 128 kept pixels.
    mask = Image.new("L", (16, 16))
    mask.paste(255, (0, 0, 8, 16))
    moved = source.copy()
    moved.putpixel((12, 3), (51, 51, 51))
    assert M.psnr(source, moved, mask) == pytest.approx(10 * math.log10(128 / 0.2**2), abs=1e-5)
    assert M.psnr(source, edited, mask) == M.PSNR_CAP  # the change at x = 3 is inside the mask


def test_identical_images_score_perfect_preservation(backbone, photo):
    mask = center_mask(photo.size)
    for m in (None, mask):
        scores = M.score_cell(backbone, photo, photo.copy(), "a house", "a house", mask=m)
        assert scores["ssim"] == pytest.approx(1.0, abs=1e-6)
        assert scores["psnr"] == M.PSNR_CAP
        assert scores["lpips"] == pytest.approx(0.0, abs=1e-6)
        assert scores["structure_dist"] == pytest.approx(0.0, abs=1e-5)


def test_mask_restricts_preservation_to_outside(backbone, photo):
    """Noise only inside the mask: masked SSIM / PSNR / LPIPS stay perfect, unmasked ones drop."""
    mask = center_mask(photo.size)
    edited = _noise_inside(photo, mask)
    masked = M.score_cell(backbone, photo, edited, "x", mask=mask, metrics=("ssim", "psnr", "lpips"))
    whole = M.score_cell(backbone, photo, edited, "x", metrics=("ssim", "psnr", "lpips"))
    assert masked["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert masked["psnr"] == M.PSNR_CAP
    assert masked["lpips"] == pytest.approx(0.0, abs=1e-6)
    # Measured without the mask (a quarter of the pixels is noise): SSIM 0.70, PSNR 14.2 dB, LPIPS 0.109.
    assert whole["ssim"] < 0.8 and whole["psnr"] < 20.0 and whole["lpips"] > 0.05
    # And noise only outside is seen through the mask.
    outside = _noise_inside(photo, Image.eval(mask, lambda v: 255 - v), seed=1)
    seen = M.score_cell(backbone, photo, outside, "x", mask=mask, metrics=("ssim", "psnr", "lpips"))
    # Measured: SSIM 0.014, PSNR 8.5 dB, LPIPS 0.20 over the outside pixels.
    assert seen["ssim"] < 0.1 and seen["psnr"] < 12.0 and seen["lpips"] > 0.1
    # A mask over everything leaves nothing to preserve: the metrics are left out.
    full = Image.new("L", photo.size, 255)
    assert M.score_cell(backbone, photo, edited, "x", mask=full, metrics=("ssim", "psnr", "lpips")) == {}


def test_lpips_map_equals_torchmetrics_spatial_mode(backbone, photo):
    """Our spatial LPIPS map (for masks) = torchmetrics' own LPIPS built with spatial=True, same weights."""
    from torchmetrics.functional.image.lpips import _LPIPS

    network = backbone.addon("metric_lpips")
    spatial = _LPIPS(pretrained=False, net="alex", pnet_rand=True, spatial=True)
    spatial.load_state_dict(network.state_dict())
    a, b = M.to_tensor(photo), M.to_tensor(make_photo(seed=9))
    with torch.no_grad():
        ours, reference = M.lpips_map(network, a, b), spatial(a, b, normalize=True)
    assert ours.shape == (1, 1, *photo.size[::-1])
    torch.testing.assert_close(ours, reference)
    # Unmasked LPIPS is torchmetrics' (non-spatial) value of the same network.
    with torch.no_grad():
        assert M.lpips(backbone, photo, make_photo(seed=9)) == pytest.approx(float(network(a, b, normalize=True)))


def test_structure_distance_uses_dino_keys_of_the_last_layer(backbone, photo):
    """Keys read off the layer equal what its key projection computes in the forward pass (hooked)."""
    model, processor = backbone.addon("metric_dino")
    edited = make_photo(seed=3)
    captured = []
    hook = model.layers[-1].attention.k_proj.register_forward_hook(lambda module, args, out: captured.append(out))
    try:
        with torch.no_grad():
            model(pixel_values=processor(images=[photo, edited], return_tensors="pt")["pixel_values"])
    finally:
        hook.remove()
    keys = M.dino_keys(backbone, [photo, edited])
    torch.testing.assert_close(keys, captured[0])
    unit = F.normalize(captured[0], dim=-1)
    similarity = unit @ unit.transpose(1, 2)
    expected = float(torch.sqrt(((similarity[0] - similarity[1]) ** 2).sum()))
    assert M.structure_distance(backbone, photo, edited) == pytest.approx(expected, rel=1e-5)
    assert expected > 0.1  # measured 0.85 on the tiny DINO


def test_score_cell_leaves_out_what_does_not_apply(backbone, photo):
    edited = make_photo(seed=2)
    assert set(M.score_cell(backbone, None, edited, "a red car")) == {"clip_score"}
    no_source_prompt = M.score_cell(backbone, photo, edited, "a red car")
    assert "clip_directional" not in no_source_prompt and "ssim" in no_source_prompt
    assert "clip_score" not in M.score_cell(backbone, photo, edited, "")
    with pytest.raises(KeyError, match="known metrics"):
        M.score_cell(backbone, photo, edited, "x", metrics=("fid",))


def test_metrics_table_from_a_comparison(backbone, photo):
    """Rows = the comparison's methods; values equal score_cell; a skipped method gets NaN; no weight moves."""
    inputs = EditInputs(image=photo, prompt="a red car", source_prompt="a house", steps=2)
    comparison = run_comparison(backbone, "text", ["sdedit"], inputs, seed=0)
    for addon in ("metric_clip", "metric_dino", "metric_lpips"):
        backbone.addon(addon)  # loaded first, so the fingerprints below compare the same set of modules
    before_state, before_weights = backbone.state_fingerprint(), weights_checksum(backbone)
    table = M.metrics_table(backbone, comparison, inputs)
    assert list(table.columns) == ["method", "status", *M.DEFAULT_METRICS]
    assert table.loc[0, "method"] == "SDEdit" and table.loc[0, "status"] == "ok"
    expected = M.score_cell(backbone, photo, comparison.result("sdedit"), "a red car", "a house")
    for name in M.DEFAULT_METRICS:
        assert table.loc[0, name] == pytest.approx(expected[name])
    assert backbone.state_fingerprint() == before_state
    assert weights_checksum(backbone) == before_weights

    empty = EditInputs(image=photo, prompt="", steps=2)
    skipped = M.metrics_table(backbone, run_comparison(backbone, "text", ["sdedit"], empty, seed=0), empty)
    assert skipped.loc[0, "status"] == "skipped"
    assert all(math.isnan(skipped.loc[0, name]) for name in M.DEFAULT_METRICS)
