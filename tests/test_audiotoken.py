"""AudioToken: the token has the text width and follows the clip; the edit equals diffusers' img2img with the
placeholder added by hand; shared models unchanged; BEATs' port has the checkpoint's keys and front end."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import StableDiffusionImg2ImgPipeline

import methods.audiotoken  # noqa: F401  (registers the method)
from methods.audiotoken import TOKEN, audio_token, compute_token
from methods.core import beats
from methods.core.backbone import Backbone
from methods.core.runner import run_comparison
from methods.core.spec import Audio, EditInputs
from tests.helpers import direct_components, weights_checksum

RATE, SEED, STEPS, PROMPT = 16_000, 0, 4, "a house on a meadow"


def tone(frequency: float, seconds: float = 2.0, rate: int = RATE) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def test_token_has_the_text_width_and_follows_the_clip(backbone: Backbone) -> None:
    width = backbone.text_encoder.get_input_embeddings().weight.shape[1]
    a = audio_token(backbone, tone(440))
    assert a.shape == (width,)
    encoder = backbone.addon("audiotoken")
    assert torch.equal(compute_token(encoder, tone(440)), a)  # the same clip, the same token (no dropout)
    b = compute_token(encoder, tone(2_000))
    assert not torch.allclose(a, b)
    # the embedder's input is the three kept layers' outputs, concatenated per frame (extract_features(...)[1])
    waveform = beats.official_clip(tone(440).waveform)
    last, kept = encoder.beats(beats.filter_banks(waveform), encoder.layers)
    features = encoder.features(waveform)
    assert features.shape == (1, 62 * 8, 3 * encoder.beats.config.encoder_embed_dim)  # 998 frames x 128 bins / 16
    assert torch.equal(features, torch.cat(kept, dim=2)) and torch.equal(kept[-1], last)


def test_edit_equals_img2img_with_the_placeholder_added(backbone: Backbone, photo) -> None:
    fingerprint, sums = backbone.state_fingerprint(), weights_checksum(backbone)
    vocabulary = len(backbone.tokenizer)
    rows = backbone.text_encoder.get_input_embeddings().weight.shape[0]
    inputs = EditInputs(image=photo, prompt=PROMPT, audio=tone(440), steps=STEPS)
    comparison = run_comparison(backbone, "audio", ["audiotoken"], inputs, seed=SEED)
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    assert record["info"]["prompt"] == f"a photo of {TOKEN}, {PROMPT}"
    assert "nearest words" in record["info"]
    ours = np.asarray(comparison.result("audiotoken"))
    # shared state untouched: UNet / text encoder weights, embedding rows, tokenizer
    assert backbone.state_fingerprint() == fingerprint and weights_checksum(backbone) == sums
    assert len(backbone.tokenizer) == vocabulary and TOKEN not in backbone.tokenizer.get_vocab()
    assert backbone.text_encoder.get_input_embeddings().weight.shape[0] == rows
    token = audio_token(backbone, tone(440))
    pipe = StableDiffusionImg2ImgPipeline(**direct_components(backbone))
    pipe.set_progress_bar_config(disable=True)
    with backbone.borrowed():
        pipe.load_textual_inversion({TOKEN: token}, token=TOKEN)
        reference = pipe(
            prompt=f"a photo of {TOKEN}, {PROMPT}",
            image=photo,
            strength=0.7,
            num_inference_steps=STEPS,
            guidance_scale=inputs.guidance,
            generator=torch.Generator("cpu").manual_seed(SEED),
        ).images[0]
    assert np.array_equal(ours, np.asarray(reference))
    assert len(backbone.tokenizer) == vocabulary


def test_beats_port_has_the_official_keys_and_loads_the_checkpoint_strictly(tmp_path) -> None:
    with torch.device("meta"):
        model = beats.BEATs(beats.BEATsConfig())
    shapes = {k: tuple(v.shape) for k, v in beats.to_official(model.state_dict()).items()}
    # one layer as modules/BEATs/backbone.py names it (MultiheadAttention + TransformerSentenceEncoderLayer)
    layer = {
        "self_attn.grep_a": (1, 12, 1, 1),
        "self_attn.relative_attention_bias.weight": (320, 12),
        "self_attn.k_proj.weight": (768, 768),
        "self_attn.k_proj.bias": (768,),
        "self_attn.v_proj.weight": (768, 768),
        "self_attn.v_proj.bias": (768,),
        "self_attn.q_proj.weight": (768, 768),
        "self_attn.q_proj.bias": (768,),
        "self_attn.out_proj.weight": (768, 768),
        "self_attn.out_proj.bias": (768,),
        "self_attn.grep_linear.weight": (8, 64),
        "self_attn.grep_linear.bias": (8,),
        "self_attn_layer_norm.weight": (768,),
        "self_attn_layer_norm.bias": (768,),
        "fc1.weight": (3072, 768),
        "fc1.bias": (3072,),
        "fc2.weight": (768, 3072),
        "fc2.bias": (768,),
        "final_layer_norm.weight": (768,),
        "final_layer_norm.bias": (768,),
    }
    assert {k[len("encoder.layers.5.") :]: v for k, v in shapes.items() if k.startswith("encoder.layers.5.")} == layer
    rest = {k: v for k, v in shapes.items() if not k.startswith("encoder.layers.")}
    assert rest == {
        "post_extract_proj.weight": (768, 512),
        "post_extract_proj.bias": (768,),
        "patch_embedding.weight": (512, 1, 16, 16),  # conv_bias False
        "encoder.pos_conv.0.bias": (768,),
        "encoder.pos_conv.0.weight_g": (1, 1, 128),  # nn.utils.weight_norm(dim=2)
        "encoder.pos_conv.0.weight_v": (768, 48, 128),
        "encoder.layer_norm.weight": (768,),
        "encoder.layer_norm.bias": (768,),
        "layer_norm.weight": (512,),
        "layer_norm.bias": (512,),
    }
    assert len(shapes) == 10 + 12 * len(layer) and "encoder.layers.12.fc1.weight" not in shapes
    with torch.device("meta"):
        embedder = beats.FGAEmbedder()
    assert {k: tuple(v.shape) for k, v in embedder.state_dict().items()} == {
        "fc1.weight": (2304, 2304),
        "fc1.bias": (2304,),
        "fc2.weight": (768, 2304),
        "fc2.bias": (768,),
        "fga.un_models.0.embed.weight": (768, 768, 1),
        "fga.un_models.0.embed.bias": (768,),
        "fga.un_models.0.feature_reduce.weight": (1, 768, 1),
        "fga.un_models.0.feature_reduce.bias": (1,),
        "fga.pp_models.0.embed_X.weight": (768, 768, 1),
        "fga.pp_models.0.embed_X.bias": (768,),
        "fga.pp_models.0.embed_Y.weight": (768, 768, 1),
        "fga.pp_models.0.embed_Y.bias": (768,),
        "fga.reduce_potentials.0.weight": (1, 2, 1),
    }
    # a small model saved as the official file, plus the fine-tuned checkpoint's predictor: strict load, same weights
    config = beats.BEATsConfig(
        embed_dim=8, encoder_layers=2, encoder_embed_dim=16, encoder_ffn_embed_dim=16, encoder_attention_heads=2,
        conv_pos=4, conv_pos_groups=2, num_buckets=8, max_distance=16,
    )  # fmt: skip
    source = beats.BEATs(config)
    beats.init_seeded(source, torch.Generator().manual_seed(0))
    state = beats.to_official(source.state_dict())
    extra = {"predictor.weight": torch.zeros(527, 16), "predictor.bias": torch.zeros(527)}
    cfg = {**vars(config), "finetuned_model": True, "predictor_class": 527, "dropout": 0.0, "encoder_layerdrop": 0.05}
    torch.save({"cfg": cfg, "model": {**state, **extra}}, tmp_path / beats.BEATS_FILE)
    loaded = beats.load_beats(tmp_path / beats.BEATS_FILE)
    assert loaded.config == config
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    fbank = torch.randn(1, 64, 128, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded(fbank, (0, 1))[0], source(fbank, (0, 1))[0])


def test_front_end_is_beats_preprocess() -> None:
    short = tone(440, seconds=1.5).waveform
    clip = beats.official_clip(short)
    assert len(clip) == 10 * RATE and np.array_equal(clip[len(short) : 2 * len(short)], short)  # tiled, cut at 10 s
    fbank = beats.filter_banks(clip)
    assert fbank.shape == (1, 1 + (10 * RATE - 400) // 160, 128)  # Kaldi frames: 25 ms every 10 ms, snip_edges
    assert (beats.FBANK_MEAN, beats.FBANK_STD) == (15.41663, 6.55582)
    # silence: every bin is log(float eps), then (x - mean) / (2 std)
    silent = beats.filter_banks(np.zeros(RATE, dtype=np.float32))
    expected = (np.log(1.192092955078125e-07) - 15.41663) / (2 * 6.55582)
    assert torch.allclose(silent, torch.tensor(expected, dtype=torch.float32), atol=1e-5)


def test_missing_audio_is_a_skipped_cell_with_a_sentence(backbone: Backbone, photo) -> None:
    comparison = run_comparison(backbone, "audio", ["audiotoken"], EditInputs(image=photo, steps=2), seed=SEED)
    record = comparison.records[0]
    assert record["status"] == "skipped" and "audio" in record["message"]
