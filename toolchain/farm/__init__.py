"""Board farm: validation and attack campaigns sharded over many devices.

``pool``: which devices (several ports, a devices file, N QEMU boards) and how to open one;
``scheduler``: one thread per device handing out work items, retiring a device that fails and
re-queueing its item, results merged in index order; ``validate`` and ``attack``: the work
items of ``stq validate`` (blocks of inputs) and ``stq attack`` (one image's whole black-box
attack); ``ray_farm``: the same campaign on a Ray cluster (optional extra ``stq[farm]``);
``report``: per-device throughput, retries and failures. See docs/farm.md.
"""
