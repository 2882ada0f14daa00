"""Reproducing the papers' AVA and AADB training runs.

- Data: the split types (``splits``), one reader per dataset in its release's format (``ava``,
  ``aadb``), found by name through the registry (``datasets``); the pipeline to tensors (``data``).
- Recipes: TOML files resolved against defaults (``recipes``); the papers' metrics (``metrics``).
- A run: its options and files (``options``), the checks made before any process starts
  (``preflight``), the process group, gathering and RNG state (``distributed``), the loop
  (``trainer``), evaluation and ``aesthete eval`` (``evaluation``), and the multi-process launcher
  (``launcher``). ImageNet backbone weights are loaded by :mod:`aesthete.models.backbones`.

Importing this package imports nothing heavy; ``data``, ``distributed``, ``runtime``, ``evaluation``
and ``trainer`` import torch, the rest do not.
"""
