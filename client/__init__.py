"""Headless ComfyUI client: upload, convert UI workflows with /object_info, override inputs, queue,
follow /ws progress, download outputs. Standard library only; imports nothing from the node pack,
so the folder can be copied anywhere (``python -m client --help``)."""
