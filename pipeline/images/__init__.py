"""Images: listing a source, writing and reading image listings, and decoding images.

* :mod:`~pipeline.images.settings`  :class:`DatasetSettings`, the ``dataset:`` config section
* :mod:`~pipeline.images.listing`   the listing files jobs share (:class:`ImageRecord`,
  :func:`write_listing`, :func:`read_listing`; format in docs/STORE.md, "Image listings")
* :mod:`~pipeline.images.dataset`   image sources (:func:`open_source`), decoding that
  turns bad files into skipped rows, and the DataLoader dataset
* :mod:`~pipeline.images.job`       :func:`run_list_images`, the workflow's listing job

Importing this package does not import torch (the workflow reads listings to plan
jobs); the decoding names load :mod:`~pipeline.images.dataset` on first use (PEP 562).
"""

from pipeline._lazy import lazy_attributes
from pipeline.images.listing import ImageListing, ImageRecord, read_listing, write_listing
from pipeline.images.settings import DatasetSettings

_LAZY = {
    "BadImage": "pipeline.images.dataset",
    "ImageDataset": "pipeline.images.dataset",
    "ImageSource": "pipeline.images.dataset",
    "SkippedImage": "pipeline.images.dataset",
    "load_rgb": "pipeline.images.dataset",
    "open_source": "pipeline.images.dataset",
    "records_of_table": "pipeline.images.dataset",
    "to_model_input": "pipeline.images.dataset",
    "to_uint8": "pipeline.images.dataset",
    "run_list_images": "pipeline.images.job",
}

__all__ = ["DatasetSettings", "ImageListing", "ImageRecord", "read_listing", "write_listing", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
