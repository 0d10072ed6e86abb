"""Teacher feature stores: PCA-reduced patch-grid features per frame."""

from n3f.features.store import FeatureStore

__all__ = ["FeatureStore"]
