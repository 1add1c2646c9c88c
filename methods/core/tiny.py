"""The tiny profile: every component from small configs with seeded random weights.

Each builder writes one component in the same on-disk layout as its real checkpoint (diffusers or
transformers format, same subfolders and file names), so the backbone loads it back through the very
same ``from_pretrained`` code as the real model. Outputs of these weights look like noise: they exist
so that tests, CI and offline starts exercise every real code path on a 2-core machine.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

TINY_VERSION = "tiny-v2"
TINY_SIZE = 128  # working image size in pixels (latents 16x16)
CROSS_DIM = 32
SEED = 0

_UNET_BLOCKS = {
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": CROSS_DIM,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}


def _seeded(offset: int = 0) -> None:
    torch.manual_seed(SEED + offset)


def _clip_tokenizer():
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    vocab = {token: i for i, token in enumerate(tokens)}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_unet(in_channels: int = 4, **extra):
    from diffusers import UNet2DConditionModel

    _seeded(in_channels)
    return UNet2DConditionModel(
        sample_size=TINY_SIZE // 8, in_channels=in_channels, out_channels=4, **_UNET_BLOCKS, **extra
    )


def build_base(folder: Path) -> None:
    """A whole SD-1.5-shaped pipeline folder (model_index.json + components)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = _clip_tokenizer()
    _seeded(1)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=CROSS_DIM,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=CROSS_DIM,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    _seeded(2)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_SIZE,
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=tiny_unet(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    # SD 1.5's scheduler config carries clip_sample=false, which DDIM and other samplers read from it.
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["clip_sample"] = False
    config_path.write_text(json.dumps(config, indent=2))


def build_inpaint_unet(folder: Path) -> None:
    tiny_unet(in_channels=9).save_pretrained(folder / "unet")


def _controlnet(offset: int):
    from diffusers import ControlNetModel

    _seeded(100 + offset)
    blocks = {k: v for k, v in _UNET_BLOCKS.items() if k != "up_block_types"}
    model = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 16, 16, 32), **blocks)
    # Real ControlNets start from zero convolutions and learn them; random ones must not be zero, or the
    # tiny control would have no effect at all and tests could not see it.
    with torch.no_grad():
        zero_convs = [
            *model.controlnet_down_blocks,
            model.controlnet_mid_block,
            model.controlnet_cond_embedding.conv_out,
        ]
        for conv in zero_convs:
            conv.weight.normal_(0.0, 0.05)
    return model


def build_controlnet_openpose(folder: Path) -> None:
    _controlnet(1).save_pretrained(folder)


def build_controlnet_scribble(folder: Path) -> None:
    _controlnet(2).save_pretrained(folder)


def build_controlnet_seg(folder: Path) -> None:
    _controlnet(3).save_pretrained(folder)


def build_ip_adapter_image_encoder(folder: Path) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    _seeded(200)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder / "models" / "image_encoder")


def build_ip_adapter(folder: Path) -> None:
    """IP-Adapter weights with the original key layout: image_proj.* and ip_adapter.<i>.to_{k,v}_ip."""
    from safetensors.torch import save_file

    _seeded(201)
    unet = tiny_unet()
    image_embed_dim, tokens = 32, 4
    tensors = {
        "image_proj.proj.weight": torch.randn(CROSS_DIM * tokens, image_embed_dim) * 0.05,
        "image_proj.proj.bias": torch.zeros(CROSS_DIM * tokens),
        "image_proj.norm.weight": torch.ones(CROSS_DIM),
        "image_proj.norm.bias": torch.zeros(CROSS_DIM),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = _hidden_size(unet, name)
        tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, CROSS_DIM) * 0.05
        tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, CROSS_DIM) * 0.05
        key_id += 2
    (folder / "models").mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "models" / "ip-adapter_sd15.safetensors"))


def _hidden_size(unet, name: str) -> int:
    channels = unet.config.block_out_channels
    if name.startswith("mid_block"):
        return channels[-1]
    block_id = int(name.split(".")[1])
    return channels[::-1][block_id] if name.startswith("up_blocks") else channels[block_id]


def _gligen_unet(in_channels: int):
    from diffusers.models.attention import GatedSelfAttentionDense

    # The text-box checkpoints (masterful/gligen-1-4-*-text-box) use "gated"; "gated-text-image" belongs to
    # another pipeline. Trained gates are open; fresh ones start at tanh(0) = 0, so open them here, or the
    # random grounding layers would have no effect at all.
    unet = tiny_unet(in_channels=in_channels, attention_type="gated")
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, GatedSelfAttentionDense):
                module.alpha_attn.fill_(1.0)
                module.alpha_dense.fill_(1.0)
    return unet


def build_gligen_unet(folder: Path) -> None:
    _gligen_unet(4).save_pretrained(folder / "unet")


def build_gligen_inpaint_unet(folder: Path) -> None:
    _gligen_unet(9).save_pretrained(folder / "unet")


def _byte_vocab(specials: list[str]) -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {token: i for i, token in enumerate(specials)}
    for char in bytes_to_unicode().values():
        vocab[char] = len(vocab)
    return vocab


def build_clap(folder: Path) -> None:
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizer,
    )

    tokenizer = RobertaTokenizer(vocab=_byte_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]), merges=[])
    tokenizer.model_max_length = 64
    text = ClapTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=72,
        projection_dim=16,
        pad_token_id=tokenizer.pad_token_id,
    )
    audio = ClapAudioConfig(
        depths=[1, 1],
        num_attention_heads=[2, 2],
        patch_embeds_hidden_size=16,
        hidden_size=32,
        projection_dim=16,
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
    )
    _seeded(300)
    model = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer).save_pretrained(folder)


def build_dit(folder: Path) -> None:
    """Class-conditional DiT (ImageNet's 1000 classes) in the layout of facebook/DiT-XL-2-256."""
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    _seeded(400)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        sample_size=TINY_SIZE // 8,
        patch_size=2,
        num_embeds_ada_norm=1000,
    )
    transformer.save_pretrained(folder / "transformer")
    DDIMScheduler(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False).save_pretrained(
        folder / "scheduler"
    )


def build_openpose(folder: Path) -> None:
    """controlnet_aux's body / hand / face networks at full architecture, random weights (.pth files)."""
    from controlnet_aux.open_pose.body import bodypose_model
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.hand import handpose_model

    folder.mkdir(parents=True, exist_ok=True)
    _seeded(500)
    for network, filename, strip_prefix in (
        (bodypose_model(), "body_pose_model.pth", True),
        (handpose_model(), "hand_pose_model.pth", True),
        (FaceNet(), "facenet.pth", False),
    ):
        state = network.state_dict()
        if strip_prefix:  # controlnet_aux's `transfer` re-adds the first name component
            state = {".".join(k.split(".")[1:]): v for k, v in state.items()}
        torch.save(state, folder / filename)


# -- tiny builders for text methods (issue 3) --
def build_instruct_pix2pix_unet(folder: Path) -> None:
    """InstructPix2Pix's UNet: 8 input channels (noisy latent + source latent), as in timbrooks/instruct-pix2pix."""
    tiny_unet(in_channels=8).save_pretrained(folder / "unet")


# -- tiny builders for mask methods (issue 4) --


def build_sam(folder: Path) -> None:
    """Segment Anything at a tiny config (128 px input, 2-block ViT), saved as a plain state dict under the
    public ViT-B checkpoint's file name, with its config beside it (``methods.core.sam`` reads both)."""
    from methods.core import sam

    config = sam.SamConfig(
        image_size=TINY_SIZE,
        patch_size=16,
        encoder_embed_dim=32,
        encoder_depth=2,
        encoder_num_heads=2,
        encoder_global_attn_indexes=(1,),
        window_size=4,
        prompt_embed_dim=32,
        mask_in_chans=4,
        decoder_depth=2,
        decoder_mlp_dim=64,
        decoder_num_heads=2,
        iou_head_hidden_dim=32,
    )
    _seeded(600)
    sam.save_sam(sam.build_sam(config), config, folder, sam.VIT_B_FILE)


# -- tiny builders for reference methods (issue 4) --


def build_paint_by_example_unet(folder: Path) -> None:
    """Paint-by-Example's 9-channel UNet (latents + masked-image latents + mask), layout of its "unet" folder."""
    from diffusers import UNet2DConditionModel

    _seeded(700)  # its own seed: not a copy of the SD inpainting UNet (tiny_unet seeds by channel count)
    unet = UNet2DConditionModel(sample_size=TINY_SIZE // 8, in_channels=9, out_channels=4, **_UNET_BLOCKS)
    unet.save_pretrained(folder / "unet")


def build_paint_by_example_image_encoder(folder: Path) -> None:
    """PaintByExampleImageEncoder (CLIP ViT + mapper + projection to the UNet's context size) and its
    CLIPImageProcessor, in the "image_encoder" / "feature_extractor" folders of Fantasy-Studio/Paint-by-Example."""
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    _seeded(701)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,  # the mapper has (layers + 1) // 5 = 1 transformer block, as the real one has 5 of 24
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=CROSS_DIM,
    )
    PaintByExampleImageEncoder(config).save_pretrained(folder / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder / "feature_extractor"
    )


# -- tiny builders for pose / sketch / segmentation (issue 5) --


def build_controlnet_lineart(folder: Path) -> None:
    """ControlNet v1.1 Lineart, root layout of lllyasviel/control_v11p_sd15_lineart.

    Unlike the older tiny ControlNets, the convolutions of the conditioning embedding are He-initialised: with
    PyTorch's default init the signal shrinks layer by layer and the random network answers a map's constant
    part only (measured: residuals moved by ~1e-5 between two different skeletons), so no test could see the
    map's content. The output convolution is then scaled x8, so a sparse line map (3% white pixels, like the
    example sketch) adds an embedding about as large as the latent's own features."""
    model = _controlnet(10)
    embedding = model.controlnet_cond_embedding
    with torch.no_grad():
        for conv in [embedding.conv_in, *embedding.blocks, embedding.conv_out]:
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        embedding.conv_out.weight.mul_(8.0)
    model.save_pretrained(folder)


def _t2i_adapter(in_channels: int, seed: int, num_res_blocks: int = 2):
    """A full T2I-Adapter with one feature map per tiny UNet down block (32 channels at 1/8, 64 at 1/16), as
    the real SD 1.4 adapters have (320, 640, 1280, 1280) for SD's four; pixel-unshuffle 8 as the real ones
    (which have 2 res blocks per level)."""
    from diffusers import T2IAdapter

    _seeded(seed)
    channels = list(_UNET_BLOCKS["block_out_channels"])
    return T2IAdapter(in_channels=in_channels, channels=channels, num_res_blocks=num_res_blocks, downscale_factor=8)


def build_t2i_adapter_openpose(folder: Path) -> None:
    """T2I-Adapter OpenPose (RGB skeleton), root layout of TencentARC/t2iadapter_openpose_sd14v1."""
    _t2i_adapter(3, 901).save_pretrained(folder)


def build_t2i_adapter_sketch(folder: Path) -> None:
    """T2I-Adapter Sketch (one grey channel), root layout of TencentARC/t2iadapter_sketch_sd14v1."""
    _t2i_adapter(1, 902).save_pretrained(folder)


def build_annotator_lineart(folder: Path) -> None:
    """controlnet_aux's lineart generators (fine + coarse) at full size, random weights, real file names."""
    from controlnet_aux.lineart import Generator

    folder.mkdir(parents=True, exist_ok=True)
    _seeded(910)
    for filename in ("sk_model.pth", "sk_model2.pth"):
        torch.save(Generator(3, 1, 3).state_dict(), folder / filename)


def build_annotator_hed(folder: Path) -> None:
    """controlnet_aux's HED (ControlNetHED_Apache2) at full size, random weights, as ControlNetHED.pth."""
    from controlnet_aux.hed import ControlNetHED_Apache2

    folder.mkdir(parents=True, exist_ok=True)
    _seeded(911)
    torch.save(ControlNetHED_Apache2().state_dict(), folder / "ControlNetHED.pth")


def build_annotator_pidinet(folder: Path) -> None:
    """controlnet_aux's PiDiNet at full size, random weights, in the checkpoint's {"state_dict": {"module.*"}}
    layout as table5_pidinet.pth."""
    from controlnet_aux.pidi.model import pidinet

    folder.mkdir(parents=True, exist_ok=True)
    _seeded(912)
    state = {f"module.{k}": v for k, v in pidinet().state_dict().items()}
    torch.save({"state_dict": state}, folder / "table5_pidinet.pth")


def build_t2i_adapter_seg(folder: Path) -> None:
    """T2I-Adapter (full adapter) for colour segmentation maps, root layout of TencentARC/t2iadapter_seg_sd14v1
    (one res block per level: its seeded weights predate the shared helper's default)."""
    _t2i_adapter(3, 800, num_res_blocks=1).save_pretrained(folder)


def build_ade20k_segmenter(folder: Path) -> None:
    """UperNet + ConvNeXt (random, tiny) with the 150 ADE20K labels and a SegformerImageProcessor, in the root
    layout of openmmlab/upernet-convnext-small (config.json, model.safetensors, preprocessor_config.json)."""
    from transformers import ConvNextConfig, SegformerImageProcessor, UperNetConfig, UperNetForSemanticSegmentation

    from methods.core.segmap import ADE20K_CLASSES

    id2label = dict(enumerate(ADE20K_CLASSES))
    backbone = ConvNextConfig(
        depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], out_features=["stage1", "stage2", "stage3", "stage4"]
    )
    config = UperNetConfig(
        backbone_config=backbone,
        hidden_size=16,
        auxiliary_in_channels=32,
        auxiliary_channels=16,
        num_labels=len(ADE20K_CLASSES),
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
    )
    _seeded(801)
    UperNetForSemanticSegmentation(config).save_pretrained(folder)
    SegformerImageProcessor(size={"height": TINY_SIZE, "width": TINY_SIZE}).save_pretrained(folder)


# -- tiny builders for metrics (issue 6) --


def build_metric_clip(folder: Path) -> None:
    """CLIPModel + CLIPProcessor in the root layout of openai/clip-vit-large-patch14."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _clip_tokenizer()
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    }
    # Seed chosen so image-text cosines of this random CLIP take both signs (most seeds give all one sign, and
    # the CLIP score clamps negatives to 0, which would leave the tiny score constant).
    _seeded(607)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def build_metric_dino(folder: Path) -> None:
    """A DINO-style ViT (ViTModel, patch 8, no pooler) + ViTImageProcessor, layout of facebook/dino-vits8."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    _seeded(601)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=64,
        patch_size=8,
        qkv_bias=True,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    # DINO's preprocessing: ImageNet mean / std (the real processor resizes to 224).
    ViTImageProcessor(
        size={"height": 64, "width": 64}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    ).save_pretrained(folder)


def build_metric_lpips(folder: Path) -> None:
    """torchmetrics' LPIPS network (AlexNet trunk, random weights) with its packaged linear heads, saved whole."""
    from torchmetrics.functional.image.lpips import _LPIPS

    _seeded(602)
    folder.mkdir(parents=True, exist_ok=True)
    # pnet_rand: torchvision's AlexNet with weights=None (no download); pretrained: torchmetrics' shipped heads.
    network = _LPIPS(pretrained=True, net="alex", pnet_rand=True)
    torch.save(network.state_dict(), folder / "lpips_alex.pth")


def ensure_built(root: Path, name: str, builder) -> Path:
    """Build a tiny component into ``root/name`` once; later calls reuse the folder."""
    folder = root / TINY_VERSION / name
    if (folder / ".complete").exists():
        return folder
    logger.info("building tiny %s in %s", name, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    builder(staging)
    (staging / ".complete").write_text(json.dumps({"version": TINY_VERSION}))
    if folder.exists():  # a half-built folder from an interrupted run, or another process won the race
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(staging, folder)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(staging, ignore_errors=True)
    return folder
