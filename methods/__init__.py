"""Editing methods, one file each; importing this package registers them all.

Shared machinery lives in ``methods.core``. The registry is the only list of methods: tabs, tests and
scripts read it, so a new method file appears everywhere once it is imported here (one import per
line, grouped by condition in the survey's order; within a group, the order is the tab's order).
"""

# isort: skip_file
from __future__ import annotations

# text
from methods import sdedit  # noqa: F401
from methods import ledits_pp  # noqa: F401
from methods import instruct_pix2pix  # noqa: F401
from methods import diffedit  # noqa: F401
from methods import imagic  # noqa: F401
from methods import prompt_to_prompt  # noqa: F401
from methods import null_text_p2p  # noqa: F401
from methods import plug_and_play  # noqa: F401
from methods import masactrl  # noqa: F401

# mask
from methods import sd_inpaint  # noqa: F401
from methods import blended_latent  # noqa: F401
from methods import masked_sdedit  # noqa: F401
from methods import repaint  # noqa: F401
from methods import outpaint  # noqa: F401

# reference
from methods import ip_adapter  # noqa: F401
from methods import ip_adapter_inpaint  # noqa: F401
from methods import paint_by_example  # noqa: F401
from methods import reference_only  # noqa: F401
from methods import textual_inversion  # noqa: F401

# pose
from methods import controlnet_openpose  # noqa: F401
from methods import t2i_adapter_openpose  # noqa: F401
from methods import controlnet_repose  # noqa: F401

# sketch
from methods import controlnet_scribble  # noqa: F401
from methods import controlnet_lineart  # noqa: F401
from methods import t2i_adapter_sketch  # noqa: F401
from methods import sdedit_strokes  # noqa: F401

# segmentation
from methods import controlnet_seg  # noqa: F401
from methods import t2i_adapter_seg  # noqa: F401
from methods import multi_controlnet  # noqa: F401
from methods import seg_region_edit  # noqa: F401

# layout
from methods import gligen  # noqa: F401
from methods import multidiffusion  # noqa: F401
from methods import layout_guidance  # noqa: F401
from methods import boxdiff  # noqa: F401

# drag
from methods import drag_diffusion  # noqa: F401
from methods import drag_diffusion_lora  # noqa: F401
from methods import sde_drag  # noqa: F401
from methods import region_drag  # noqa: F401
from methods import dragon_diffusion  # noqa: F401

# audio
from methods import clap_sdedit  # noqa: F401
from methods import clap_ledits  # noqa: F401
from methods import imagebind_ip_adapter  # noqa: F401
from methods import sound_guidance  # noqa: F401
from methods import spoken_instruction  # noqa: F401
from methods import audiotoken  # noqa: F401

# class
from methods import ddib_dit  # noqa: F401
from methods import p2p_class_names  # noqa: F401
from methods import ddpm_inversion_dit  # noqa: F401
from methods import classifier_guidance_dit  # noqa: F401

from methods.core.registry import get_method, list_methods, register  # noqa: F401, E402
