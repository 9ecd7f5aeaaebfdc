"""Files of labelled questions: reading them as LABELLING.md defines them, validating them, the
validation folds quality choices are made on, augmentation, and the label audit.
"""
