"""One room per step: the function each ``cadkit`` command calls, usable from Python without click.

=============  ===========================================  =======================================
step           function                                     writes
=============  ===========================================  =======================================
attribute      :func:`cadkit.commands.attribute.run`        a score file (safetensors + provenance)
edit           :func:`cadkit.commands.edit.run`             an edit file
erase          :func:`cadkit.commands.erase.run`            an edit file of one erasure method (+ cost)
export         :func:`cadkit.commands.export.run`           an edited diffusers folder
generate       :func:`cadkit.commands.generate.run`         PNGs + ``generate.json``
verify         :func:`cadkit.commands.verify.run`           ``verify.csv/png/json``
=============  ===========================================  =======================================

Each validates every argument it can before loading a model (one-line errors naming the Python
parameter), then works, then writes atomically. Modules are imported on use (``cadkit.commands.edit``).
"""

__all__: list[str] = []
