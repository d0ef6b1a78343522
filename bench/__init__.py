"""genrec's benchmarks and measurements: not part of the product packages (nothing in genrec imports
this), run from the repository root.

* ``python -m bench``: decoding, training-step and tokenizer speed against plain baselines, one
  fresh process per case (``suite``, with ``decoding_speed``, ``training_speed``, ``tokenizer_speed``);
* ``python -m bench.time_to_quality``: the whole pipeline under a wall-clock budget;
* ``python -m bench.training_quality``: plain training loop vs genrec's at equal steps;
* ``python -m bench.tokenizer_methods``: every tokenizer method's SID metrics on one dataset.

The scripts call the stages through ``genrec.pipeline``; ``common`` holds what they share
(isolated runs, memory figures, markdown tables, writing NAME.json + NAME.md).
"""
