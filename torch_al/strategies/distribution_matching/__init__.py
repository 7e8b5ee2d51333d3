"""Distribution matching by descriptors: the matching loop (matching.py), PCC / PFK / EBA (fisher_kernel.py), PFK's Monte-Carlo pseudo-labels (pseudo_labels.py)."""
