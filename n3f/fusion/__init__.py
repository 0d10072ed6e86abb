"""Training-free feature fusion: teacher features lifted onto a trained field's geometry in one pass."""
