"""Tiny builders for ``speech``: a small Whisper with a byte-level tokenizer that has all of Whisper's special tokens.

The helpers here (:func:`whisper_tokenizer`, :func:`generation_config`) are shared with the full builder
(``full_speech``): both write the tokenizer as byte-level BPE without merges (the real multilingual vocabulary file
is not available offline), with the 256 single-byte tokens at ids 0-255 in GPT-2's byte order (as in the real
vocabulary), then the special tokens in Whisper's order (end of text, start of transcript, the 99 languages of the
multilingual checkpoints, translate, transcribe, start of LM, start of previous, no captions, no timestamps) and the
1 501 timestamp tokens <|0.00|> ... <|30.00|>. So ``generate(language=..., task=...)`` builds its real prompt and the
processor decodes with its real code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from methods.core.tiny import _seeded

WHISPER_LANGUAGES = 99  # the multilingual checkpoints before large-v3 (which adds Cantonese)
TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|> in steps of 0.02 s
# The punctuation and symbol bytes the real checkpoints suppress (the ids below 256 of their ``suppress_tokens``).
SUPPRESSED_BYTES = (1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93)
_SUPPRESSED_SPECIALS = (
    "<|startoftranscript|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
)


def special_tokens() -> list[str]:
    """Whisper's special tokens in id order, from <|endoftext|> to <|notimestamps|>."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    languages = [f"<|{code}|>" for code in list(LANGUAGES)[:WHISPER_LANGUAGES]]
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *languages,
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]


def whisper_tokenizer(first_special: int = 256) -> Any:
    """A byte-level WhisperTokenizer: bytes at 0-255, unreachable placeholders up to ``first_special`` (the real
    vocabulary's ordinary tokens, 50 257 of them, for the full size), then the special and timestamp tokens."""
    from transformers import AddedToken, WhisperTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    specials = special_tokens()
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMPS)]
    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    for i in range(len(vocab), first_special):  # multi-character entries: never produced without merges
        vocab[f"<|unused{i}|>"] = i
    for token in (*specials, *stamps):
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(
        vocab=vocab, merges=[], pad_token="<|endoftext|>", extra_special_tokens=specials[1:], model_max_length=448
    )
    tokenizer.add_tokens([AddedToken(stamp, normalized=False, special=False) for stamp in stamps])  # as the real one
    return tokenizer


def generation_config(tokenizer: Any, max_length: int, suppress_tokens: list[int] | None = None) -> Any:
    """The multilingual checkpoints' generation config over ``tokenizer``'s ids: language and task tokens, no
    timestamps, the suppressed tokens (default: the real list's bytes and the prompt tokens). Their
    ``alignment_heads`` (word-level timestamps only) are left out."""
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    languages = special_tokens()[2 : 2 + WHISPER_LANGUAGES]
    end = ids("<|endoftext|>")
    return GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        max_length=max_length,
        begin_suppress_tokens=[ids("Ġ"), end],  # no leading space, no empty transcript
        suppress_tokens=suppress_tokens or [*SUPPRESSED_BYTES, *ids(list(_SUPPRESSED_SPECIALS))],
        forced_decoder_ids=[[1, None], [2, ids("<|transcribe|>")]],
        is_multilingual=True,
        lang_to_id={token: ids(token) for token in languages},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
    )


def whisper_config(tokenizer: Any, generation: Any, **size: Any) -> Any:
    """A WhisperConfig with ``tokenizer``'s vocabulary and ``generation``'s token ids; ``size`` sets the widths."""
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        max_source_positions=1500,  # 30 s of 10 ms frames, halved by the second convolution
        decoder_start_token_id=generation.decoder_start_token_id,
        bos_token_id=generation.bos_token_id,
        eos_token_id=generation.eos_token_id,
        pad_token_id=generation.pad_token_id,
        begin_suppress_tokens=generation.begin_suppress_tokens,  # as in the real config.json (its defaults are
        suppress_tokens=generation.suppress_tokens,  # the English-only ids)
        **size,
    )


def save_processor(tokenizer: Any, folder: Path) -> None:
    """WhisperProcessor's two parts as the real repository has them (preprocessor_config.json and the tokenizer
    files beside the weights), at the real front end: 80 log-mel bins of 16 kHz audio, 30 s windows."""
    from transformers import WhisperFeatureExtractor

    WhisperFeatureExtractor(feature_size=80, sampling_rate=16_000, hop_length=160, chunk_length=30).save_pretrained(
        folder
    )
    tokenizer.save_pretrained(folder)


def build_whisper(folder: Path) -> None:
    """openai/whisper-base's root layout (config, generation config, weights, processor) at tiny widths; the audio
    front end (80 mel bins, 1 500 encoder positions = 30 s) and the token ids are the real ones' structure."""
    from transformers import WhisperForConditionalGeneration

    tokenizer = whisper_tokenizer()
    generation = generation_config(tokenizer, max_length=32)
    # A random decoder emits timestamp tokens after <|notimestamps|>, which a trained one does not; each would
    # send generate()'s seek loop round the 30 s window again. The tiny suppresses them to stay one short pass.
    first_stamp = tokenizer.convert_tokens_to_ids("<|0.00|>")
    generation.suppress_tokens = [*generation.suppress_tokens, *range(first_stamp, len(tokenizer))]
    config = whisper_config(
        tokenizer,
        generation,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_target_positions=64,
        init_std=0.3,  # wide enough that the random decoder's tokens depend on the clip
    )
    _seeded(900)
    model = WhisperForConditionalGeneration(config)  # the output projection is tied to the token embeddings
    model.generation_config = generation
    model.save_pretrained(folder)
    save_processor(tokenizer, folder)
