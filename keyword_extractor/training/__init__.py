"""One fine-tuning run (`python -m keyword_extractor.training`): the Lightning data module, checkpoint
selection by validation keyword F1, export to a model directory, the int8 check at export.
"""
