"""ImageBind's audio tower (checkpoint layout, ImageBind's preprocessing) and the two audio methods built on it:
the sound as IP-Adapter's image prompt (= diffusers' IP-Adapter img2img with those embeddings) and sound-guided
guidance (scale 0 = plain DDIM bit for bit; the audio-image cosine rises under guidance)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from test_ip_adapter import assert_unet_clean

import methods.imagebind_ip_adapter  # noqa: F401  (registers the methods)
import methods.sound_guidance  # noqa: F401
from methods.core import imagebind
from methods.core.backbone import Backbone
from methods.core.ddim import ddim_invert, ddim_sample
from methods.core.latents import decode_latents, encode_image, encode_prompt
from methods.core.runner import run_comparison
from methods.core.spec import Audio, EditInputs
from methods.imagebind_ip_adapter import image_embeds, prompt_embeds
from methods.sound_guidance import SoundGuide
from tests.helpers import direct_components

RATE, SEED, STEPS, PROMPT = 16_000, 0, 4, "a house on a meadow"


def tone(frequency: float, seconds: float = 3.0, rate: int = RATE) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def hub(backbone: Backbone, name: str, inputs: EditInputs, **params) -> tuple[np.ndarray, dict]:
    comparison = run_comparison(backbone, "audio", [name], inputs, seed=SEED, params={name: params})
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    return np.asarray(comparison.result(name)), record


def test_tower_has_the_checkpoint_layout_and_real_size(tmp_path) -> None:
    """Names and shapes as the official ``imagebind_model.py`` builds them. (Equivalence of the forward pass with the
    official code was measured once, outside the suite: the official model built from the mirrored repository with a
    shrunken audio tower, its filtered state dict loaded strictly here; the embeddings agree in direction to 6e-8.)"""
    with torch.device("meta"):
        tower = imagebind.ImageBindAudio(imagebind.AudioTowerConfig())
    shapes = {k: tuple(v.shape) for k, v in tower.state_dict().items()}
    # the official imagebind_model.py's names and shapes (stem without bias, learned k/v biases, 1024-wide head)
    assert shapes["modality_preprocessors.audio.rgbt_stem.proj.weight"] == (768, 1, 16, 16)
    assert shapes["modality_preprocessors.audio.pos_embedding_helper.pos_embed"] == (1, 12 * 19 + 1, 768)
    assert shapes["modality_preprocessors.audio.cls_token"] == (1, 1, 768)
    assert shapes["modality_trunks.audio.blocks.11.attn.bias_k"] == (1, 1, 768)
    assert shapes["modality_trunks.audio.blocks.0.attn.in_proj_weight"] == (3 * 768, 768)
    assert shapes["modality_trunks.audio.blocks.0.mlp.fc1.weight"] == (4 * 768, 768)
    assert shapes["modality_heads.audio.2.weight"] == (1024, 768)
    assert "modality_heads.audio.2.bias" not in shapes and "modality_trunks.audio.blocks.12.norm_1.weight" not in shapes
    assert sum(int(np.prod(s)) for s in shapes.values()) == 86_235_648  # the paper's ViT-B audio encoder (86M)
    # the authors' file holds every modality: only the audio keys are read, strictly
    small = imagebind.AudioTowerConfig(embed_dim=8, num_blocks=1, num_heads=2, out_dim=4)
    source = imagebind.ImageBindAudio(small)
    imagebind.init_like_imagebind(source, torch.Generator().manual_seed(0))
    state = {**source.state_dict(), "modality_trunks.vision.blocks.0.attn.in_proj_weight": torch.zeros(3, 3)}
    state["modality_postprocessors.audio.1.log_logit_scale"] = torch.tensor(3.0)
    path = imagebind.save_audio_tower(source, tmp_path)
    torch.save(state, path)
    loaded = imagebind.load_audio_tower(str(tmp_path), torch.device("cpu"), torch.float32)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())


def test_clip_windows_and_filter_banks_follow_imagebind() -> None:
    config = imagebind.AudioTowerConfig()
    windows = imagebind.clip_windows(tone(440, seconds=5.0), config)
    assert [len(w) for w in windows] == [2 * RATE] * 3  # three 2 s windows starting at 0, 1.5 and 3 s
    whole = imagebind.resample(tone(440, seconds=5.0), RATE).waveform
    assert np.array_equal(windows[1], whole[int(1.5 * RATE) : int(3.5 * RATE)])
    assert np.array_equal(windows[2], whole[3 * RATE :])
    assert len(imagebind.clip_windows(tone(440, seconds=1.0), config)) == 1
    banks = imagebind.filter_banks(tone(440, seconds=5.0, rate=22_050), config)
    assert banks.shape == (3, 1, 128, 204)
    # 2 s give 198 Kaldi frames; the padded frames are zero before normalisation: (0 - mean) / std
    assert torch.allclose(banks[..., 198:], torch.tensor(4.268 / 9.138), atol=1e-6)
    assert not torch.allclose(banks[..., :198], torch.tensor(4.268 / 9.138))


def test_sound_embedding_is_unit_cached_and_depends_on_the_clip(backbone: Backbone) -> None:
    a = imagebind.sound_embedding(backbone, tone(440))
    assert a.shape == (backbone.addon("ip_adapter_image_encoder").config.projection_dim,)
    assert abs(float(a.norm()) - 1) < 1e-6
    assert imagebind.sound_embedding(backbone, tone(440)) is a  # cached per clip
    b = imagebind.audio_embedding(backbone.addon("imagebind_audio"), tone(2_000))
    assert float(imagebind.cosine(a, b)) < 0.999


def test_sound_as_image_prompt_equals_diffusers_ip_adapter(backbone: Backbone, photo) -> None:
    audio = tone(440)
    inputs = EditInputs(image=photo, prompt=PROMPT, audio=audio, steps=STEPS)
    ours, record = hub(backbone, "imagebind_ip_adapter", inputs, ip_adapter_scale=0.8, strength=0.7)
    assert "sound vs photo" in record["info"]["ImageBind cosine"]
    processors = dict(backbone.unet.attn_processors)
    pipe = StableDiffusionImg2ImgPipeline(
        **direct_components(backbone, image_encoder=backbone.addon("ip_adapter_image_encoder"))
    )
    pipe.set_progress_bar_config(disable=True)
    weights = backbone.addon("ip_adapter")
    with backbone.borrowed():
        pipe.load_ip_adapter(
            weights.location, subfolder=weights.subfolder, weight_name=weights.weight_name, image_encoder_folder=None
        )
        pipe.set_ip_adapter_scale(0.8)
        sound = imagebind.audio_embedding(backbone.addon("imagebind_audio"), audio)
        photo_embeds = image_embeds(pipe, photo)
        embeds = torch.cat([torch.zeros(1, 1, sound.numel()), sound.reshape(1, 1, -1) * photo_embeds.norm()])
        assert torch.equal(embeds, prompt_embeds(sound, photo_embeds, cfg=True))
        reference = pipe(
            prompt=PROMPT,
            image=photo,
            strength=0.7,
            ip_adapter_image_embeds=[embeds],
            num_inference_steps=STEPS,
            guidance_scale=inputs.guidance,
            generator=torch.Generator("cpu").manual_seed(SEED),
        ).images[0]
    assert_unet_clean(backbone, processors)
    assert np.array_equal(ours, np.asarray(reference))
    other, _ = hub(
        backbone, "imagebind_ip_adapter", EditInputs(image=photo, prompt=PROMPT, audio=tone(2_000), steps=STEPS)
    )
    assert not np.array_equal(other, ours)  # another sound, another edit


def test_sound_guidance_scale_zero_is_plain_ddim(backbone: Backbone, photo) -> None:
    inputs = EditInputs(image=photo, prompt=PROMPT, audio=tone(440), steps=STEPS)
    ours, _ = hub(backbone, "sound_guidance", inputs, scale=0.0, strength=0.5)
    cond, uncond = encode_prompt(backbone, PROMPT)
    x_t = ddim_invert(backbone, encode_image(backbone, photo), cond, STEPS, stop_at=2)[-1]
    plain = ddim_sample(backbone, x_t, cond, STEPS, 2, inputs.guidance, negative_embeds=uncond)
    assert np.array_equal(ours, np.asarray(decode_latents(backbone, plain)))


def test_sound_guidance_raises_the_audio_image_cosine(backbone: Backbone, photo) -> None:
    audio = tone(440)
    sound = imagebind.sound_embedding(backbone, audio)
    encoder = backbone.addon("ip_adapter_image_encoder")
    # one guided step: the shifted eps moves x̂0 up the cosine (first order)
    latents = encode_image(backbone, photo)
    eps = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1))
    alpha = torch.tensor(0.5)
    z_t = alpha.sqrt() * latents + (1 - alpha).sqrt() * eps
    guide = SoundGuide(backbone, encoder, sound, scale=0.05, guided=1)
    shifted = guide(eps, z_t, alpha)
    with torch.no_grad():
        x0_plain = (z_t - (1 - alpha).sqrt() * eps) / alpha.sqrt()
        x0_guided = (z_t - (1 - alpha).sqrt() * shifted) / alpha.sqrt()
    before, after = guide.similarity_gradient(x0_plain)[0], guide.similarity_gradient(x0_guided)[0]
    assert guide.similarities == [pytest.approx(before, abs=1e-6)]
    assert after > before
    # a whole run: the result is closer to the sound than the unguided one
    inputs = EditInputs(image=photo, prompt=PROMPT, audio=audio, steps=STEPS)
    guided, record = hub(backbone, "sound_guidance", inputs, scale=0.5)
    plain, plain_record = hub(backbone, "sound_guidance", inputs, scale=0.0)
    final = float(record["info"]["ImageBind cosine"].rsplit(" ", 1)[-1])
    final_plain = float(plain_record["info"]["ImageBind cosine"].rsplit(" ", 1)[-1])
    assert final > final_plain
    assert not np.array_equal(guided, plain)


@pytest.mark.parametrize("name", ["imagebind_ip_adapter", "sound_guidance"])
def test_missing_audio_is_a_sentence(backbone: Backbone, photo, name: str) -> None:
    comparison = run_comparison(backbone, "audio", [name], EditInputs(image=photo, steps=2), seed=SEED)
    record = comparison.records[0]
    assert record["status"] == "skipped" and "audio" in record["message"]


def test_url_checkpoint_prefers_the_real_download_then_the_full_size_stand_in(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    from methods.core import loading
    from methods.core.prefetch import urls

    url = "https://example.org/weights/imagebind_huge.pth"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="prefetch"):
        loading.url_file(url)
    standin = loading.standin_path(url)
    standin.parent.mkdir(parents=True)
    standin.write_bytes(b"random")
    assert loading.url_file(url) == standin == tmp_path / "hub" / "url-files" / "imagebind_huge.pth"
    real = loading.url_cache_path(url)
    real.parent.mkdir(parents=True)
    real.write_bytes(b"real")
    assert loading.url_file(url) == real  # a real download always wins over the stand-in
    listed = urls(["audio"])  # prefetch fetches every file a URL-located add-on lists
    assert listed["https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"] == ["imagebind_audio"]
    assert [name for users in listed.values() for name in users].count("audiotoken") == 2  # BEATs + its embedder
    signed = "https://example.org/a/BEATs.pt?sv=1&sig=x%3D"
    assert loading.url_cache_path(signed).name == loading.standin_path(signed).name == "BEATs.pt"
