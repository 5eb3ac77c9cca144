"""The embedded ``tiny`` world: a procedural image domain, a small text-to-image model and its judge.

* :mod:`cadkit.tiny.domain`: object classes, styles, colours, captions and the seeded renderer;
* :mod:`cadkit.tiny.model` / :mod:`cadkit.tiny.train`: the ``StableDiffusionPipeline`` and its
  Lightning training recipe (``cadkit tiny train``);
* :mod:`cadkit.tiny.judge`: the object / style classifier (``load_judge``, ``object_classifier``,
  ``style_classifier``);
* :mod:`cadkit.tiny.evaluate`: the quality report (``cadkit tiny evaluate``).
"""

from cadkit.tiny.domain import COLOURS, OBJECTS, STYLES, object_prompt, style_prompt

__all__ = ["OBJECTS", "STYLES", "COLOURS", "object_prompt", "style_prompt"]
