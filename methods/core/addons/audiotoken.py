"""AudioToken's audio side: BEATs (the AS2M fine-tuned iter3+ checkpoint) + the trained FGA embedder, which turn a
clip into one pseudo-word embedding for SD 1.x's text encoder (768 wide)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from methods.core.addons import AddonSpec

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

_TINY = "methods.core.addons.tiny_audiotoken"
# The two published files: Microsoft's BEATs checkpoint (linked from AudioToken's README) and AudioToken's embedder.
BEATS_URL = (
    "https://valle.blob.core.windows.net/share/BEATs/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
    "?sv=2020-08-04&st=2023-03-01T07%3A51%3A05Z&se=2033-03-02T07%3A51%3A00Z&sr=c&sp=rl"
    "&sig=QJXmSJG9DbMKf48UDIU1MfzIro8HQOf3sqlNXiflY1I%3D"
)  # the link in AudioToken's README (a signed Azure link, valid until 2033)
EMBEDDER_URL = "https://github.com/guyyariv/AudioToken/raw/master/output/embedder_learned_embeds.bin"


def _encoder(location: str, spec: AddonSpec, backbone: Backbone) -> Any:
    """BEATs from its URL (or a folder) and the embedder from AudioToken's GitHub file (or the same folder)."""
    from methods.core.beats import load_audiotoken

    return load_audiotoken(location, backbone.device, backbone.dtype)


SPECS = (
    AddonSpec(
        "audiotoken",
        "AudioToken: BEATs (iter3+, AS2M fine-tuned) features -> FGA embedder -> one pseudo-word embedding",
        BEATS_URL,
        _encoder,
        f"{_TINY}:build_audiotoken",
        build_full="methods.core.addons.full_audiotoken:build_audiotoken",
        files=(BEATS_URL, EMBEDDER_URL),  # both fetched by `python -m methods prefetch`
        licence="MIT (BEATs, Microsoft unilm; AudioToken embedder, Yariv et al.)",
    ),
)
