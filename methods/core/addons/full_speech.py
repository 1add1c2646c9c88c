"""Full builders for ``speech``: openai/whisper-base at its real config with seeded random weights (``fullsize``).

The tokenizer is byte-level (the real multilingual BPE vocabulary file is not available offline): the 256 byte
tokens sit at ids 0-255 as in the real vocabulary, unreachable placeholders fill the ids of the real vocabulary's
merged tokens (256-50 256), and every special token (<|endoftext|> 50 257, <|startoftranscript|> 50 258, the 99
languages, <|translate|> 50 358, <|transcribe|> 50 359, <|notimestamps|> 50 363, the timestamps to 51 864) has its
real id, so the generation config is the real one and ``generate(language=..., task=...)`` builds the real prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from methods.core.fullsize import Writer

WHISPER_BASE_FIRST_SPECIAL = 50_257  # <|endoftext|>: the real vocabulary's ordinary tokens come before it
# openai/whisper-base's generation_config.json "suppress_tokens" (ids of the real vocabulary: symbols, and the
# prompt tokens <|startoftranscript|>, <|translate|>, <|transcribe|>, <|startoflm|>, <|startofprev|>, <|nocaptions|>)
# fmt: off
WHISPER_BASE_SUPPRESS = [
    1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93, 359, 503, 522, 542, 873,
    893, 902, 918, 922, 931, 1350, 1853, 1982, 2460, 2627, 3246, 3253, 3268, 3536, 3846, 3961, 4183, 4667, 6585, 6647,
    7273, 9061, 9383, 10428, 10929, 11938, 12033, 12331, 12562, 13793, 14157, 14635, 15265, 15618, 16553, 16604, 18362,
    18956, 20075, 21675, 22520, 26130, 26161, 26435, 28279, 29464, 31650, 32302, 32470, 36865, 42863, 47425, 49870,
    50254, 50258, 50358, 50359, 50360, 50361, 50362,
]
# fmt: on


def whisper_base_size() -> dict[str, Any]:
    """openai/whisper-base's config.json widths: 512 wide, 6 + 6 layers of 8 heads, 448 target positions."""
    return {
        "d_model": 512,
        "encoder_layers": 6,
        "encoder_attention_heads": 8,
        "encoder_ffn_dim": 2048,
        "decoder_layers": 6,
        "decoder_attention_heads": 8,
        "decoder_ffn_dim": 2048,
        "max_target_positions": 448,
        "activation_function": "gelu",
        "scale_embedding": False,
    }


def whisper_base_parts() -> tuple[Any, Any, Any]:
    """(tokenizer, generation config, WhisperConfig) of openai/whisper-base (vocabulary 51 865, 80 mel bins)."""
    from methods.core.addons.tiny_speech import generation_config, whisper_config, whisper_tokenizer

    tokenizer = whisper_tokenizer(WHISPER_BASE_FIRST_SPECIAL)
    generation = generation_config(tokenizer, max_length=448, suppress_tokens=WHISPER_BASE_SUPPRESS)
    return tokenizer, generation, whisper_config(tokenizer, generation, **whisper_base_size())


def build_whisper(folder: Path, writer: Writer) -> None:
    """openai/whisper-base's root: config.json, generation_config.json, model.safetensors (no fp16 variant there)
    and the WhisperProcessor (preprocessor_config.json, tokenizer files)."""
    from transformers import WhisperForConditionalGeneration

    from methods.core.addons.tiny_speech import save_processor

    tokenizer, generation, config = whisper_base_parts()
    model = writer.build(lambda: WhisperForConditionalGeneration(config), 900)
    model.tie_weights()  # the output projection is the token embedding, as in the checkpoint (one tensor)
    writer.save_model(model, folder)
    generation.save_pretrained(folder)
    save_processor(tokenizer, folder)
