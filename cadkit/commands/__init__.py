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
attack         :func:`cadkit.commands.attack.run`           per-prompt attack records + ``summary.json``
tiny train     :mod:`cadkit.commands.tiny` (checks)         the checks before training (no files)
=============  ===========================================  =======================================

Each validates every argument it can before loading a model (one-line errors naming the Python
parameter), then works, then writes atomically. An output is never an input, and replaces only an
earlier output of its kind (see :func:`cadkit.outputs.check_output_folder`, :func:`cadkit.tensor_files.check_out_file`).
Modules are imported on use (``cadkit.commands.edit``).
"""

__all__: list[str] = []
