"""Reproducing the papers' AVA and AADB training runs: dataset readers in the releases' formats
(``ava``, ``aadb``), TOML recipes (``recipes``), the papers' metrics (``metrics``), the data pipeline
(``data``), the DistributedDataParallel loop (``trainer``) and its multi-process launcher (``worker``).

Importing this package imports nothing heavy; ``data``, ``trainer`` and ``worker`` import torch.
"""
