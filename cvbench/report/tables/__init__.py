"""Comparison tables rebuilt from the papers' numbers and the record files only, one module
per table (:mod:`.main`, :mod:`.cost`, :mod:`.synthetic`, :mod:`.timing`, :mod:`.splits`,
:mod:`.few_shot`, :mod:`.per_class`, :mod:`.not_used`, :mod:`.gpu`; what several share in
:mod:`.common`); :mod:`cvbench.report.render` writes them all.

Inputs: ``results/reported.yaml`` (:func:`cvbench.report.reported.load_reported`), the records in
``results/runs/`` (:func:`cvbench.report.records.load_records`, which also says which record of
several is shown: the latest ``created``, ties by file name) and the GPU check's records in
``results/gpu/`` (:func:`cvbench.report.records.load_gpu_records`, the same rule). Outputs, each written as
Markdown (``.md``), CSV (``.csv``, with a ``Sources`` column naming the record files or the
reported.yaml entry behind each row) and LaTeX (``.tex``, booktabs), under ``results/tables/``:

* ``main`` — the papers' main comparison layout (Method, Modality, Pretrain, Frames, GFLOPs,
  Tunable params, then the accuracy columns the paper table prints: HMDB51, UCF101,
  Kinetics-400, Kinetics-600, SSv2, SSv1 in that order), one block per paper table with any
  accuracy column (kinds ``main`` and ``cost``); the CSV has every column, empty where a
  block lacks it. Every printed row is ``reported``; under the paper's own row
  (:data:`cvbench.report.papers.PAPER_METHOD`; the anchor, chosen by :func:`.common.anchor_row`) come our ``reproduced`` row
  and a ``diff`` row (ours - reported, absolute and %), then for each reading of the paper
  (a ``paper_X`` preset, :attr:`methods.registry.MethodEntry.readings`) a ``reading`` row
  (its own cost record, counted as the ``paper`` row is, and its own protocol runs) and its
  ``diff`` row, the reason in a numbered note.
* ``cost`` — long format, one row per paper number compared with ours (the ``comparison``
  lists of the cost records): method, preset, quantity, reported (with its paper, table and
  row), ours, how ours is counted (in words), diff, tolerance, verdict (``ok``, ``documented
  gap [n]`` with the reason as numbered footnote n, ``FAIL``); a method no comparison covers
  gets one row of our ``paper``-preset counts, verdict ``no reported number``; so does each
  reading preset whose cost record compares nothing (or ``no cost record``).
* ``synthetic`` — one row per registered method on the synthetic dataset (full training
  set): preset, weights (random, synthetic CLIP, or the weight files), epochs, top-1,
  mean-class, test videos, train time, tunable parameters; a top-1 at or below the
  appearance-only baseline's (``iframe``) is marked, chance level in the notes.
* ``timing`` — pre-processing / inference / full pipeline ms per video: the papers' timing
  rows, then the timing records (the clip timed in a note, the setup short in its column).
* ``splits`` — top-1 per split (1, 2, 3) and their mean, per (method, preset, dataset);
  ``-`` under a split the dataset lacks (Kinetics-400 and SSv2: split 1 only).
* ``few_shot`` — the TP-CLIP K-shot grid (K = 2, 4, 8, 16) and our K-shot runs beside it.
* ``not_used`` — every record no table uses as a result, with its file and why.
* ``gpu`` — the GPU check (``cvbench bench gpu``), one block per (preset, GPU, training
  precision), one row per method: the device batch (and the paper's global batch on one GPU),
  step time and videos/s there, peak memory measured and predicted by the memory model, GiB
  per video, the largest batch per GPU memory class, inference ms per video (fp32 / bf16)
  and the DataLoader's best videos/s and the workers needed to feed the training.

Formatting is fixed so the same inputs give byte-identical files: our accuracies in % with
1 decimal, GFLOPs (GMACs) with 2, parameters in millions with 2 (3 for the tiny presets'
counts in ``synthetic``), milliseconds with 2. A reported number is shown at least with
those decimals and never rounded below the precision the paper printed (95.33 stays 95.33).
``-`` is a cell the paper leaves empty; ``n/a`` a number we do not have (no record yet).
Rows are ordered by the papers' printed order and by :func:`cvbench.report.inputs.method_order` (the registry:
the five papers' methods, then the baselines), never by dict or filesystem order. Every
Markdown table stays within ten columns: what would repeat on every row (a long reason, the
clip timed) is a note under the table, numbered where rows point at it.

Which run records are used (:mod:`cvbench.report.classify`): only ``protocol`` runs (the paper's
recipe on the complete official split) make a ``reproduced`` row and a 3-split mean of
``main``; ``custom`` runs (complete, off that recipe) get their own ``custom`` rows with the
reason in a note, and are the rows of ``synthetic`` (the synthetic dataset has no protocol);
``partial`` and ``invalid`` records, record files that do not load, reported.yaml entries
left out and superseded records are listed in ``not_used`` with their file and reason.
Among records of one identity (``identity_hash``; for format-1 records the table key) the
newest is shown (:func:`cvbench.report.inputs.group_runs`); records of one group (method, preset, dataset, shots,
class, settings) and split with different seeds are averaged, "mean ± std (n seeds)".

Accuracy over splits (:func:`.common.accuracy_over_splits`): the mean over the dataset's splits when
all were run (1-3 for UCF101 and HMDB51; Kinetics-400 and SSv2 have one official split, split 1,
which alone is the whole protocol), otherwise the lowest split run, labelled "split N only".
"""
