"""Input specs several stages share (not a stage: the registry loads only the modules it names)."""
from __future__ import annotations

from ..core.manifest import entry
from ..core.model_paths import model_choices


def model_input(model_id: str, tip: str, extra: tuple[str, ...] = ()) -> tuple:
    """A dropdown of the files in the model folders of this manifest entry's kind (manifest path first,
    so saved workflows validate; 'not installed: ...' as default when it is absent)."""
    e = entry(model_id)
    choices, default = model_choices(e)
    return ([*choices, *extra], {"default": default, "tooltip": f"{tip} Looked up in the '{e.kind}' model folders "
                                 f"(models/{e.kind}/ or extra_model_paths.yaml). Source: {e.source}. "
                                 f"Licence: {e.licence}."})
