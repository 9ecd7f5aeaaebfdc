r"""Core of kobart-keywords: data, models, inference and metrics, in wings.

Plain Python: nothing here imports Prefect, BentoML or Streamlit, so the pipeline tasks, the service
and the app can all share it. Each wing imports only from the wings below it (tests/test_layers.py
holds this against the code):

    evaluation   training          scoring a model beside the rule; one fine-tuning run
          \       /
          inference                the one inference path (KeywordExtractor), bulk prediction
              |
            model    feedback      the model directory: options, tokenizer/encoding, decoding, span selector;
              |     /              people's corrections: checked like training rows, stored, reviewed, exported
              |    /
            data                   labelled files: reading, validation, folds, augmentation, label audit
              |
            text                   Korean words, candidate spans, keyword lists, metrics, the Kiwi rule
              |
           common                  atomic files, paths, CLI helpers, progress, the CPU, step results

`integrations/` (MLflow, BentoML) stands beside the wings and imports them; no wing imports it.
"""

__version__ = "0.1.0"
