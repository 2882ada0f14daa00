"""The benchmark's measurements, one module per stage of ``score`` (and the whole, end to end).

Each function here runs one measurement and returns its figures as a dict; ``bench/run.py`` decides the
order, the processes they run in and how they combine. Functions that import torch are run by
``bench.common.in_fresh_process``, so the process that forks decode workers never holds torch.
"""
