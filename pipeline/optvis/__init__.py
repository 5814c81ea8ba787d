"""Feature visualization by optimisation, after Lucid (pure: tensors in, tensors out).

* :mod:`~pipeline.optvis.param`       how an image is made from parameters (FFT or pixels)
* :mod:`~pipeline.optvis.transforms`  random per-item transformations (robustness)
* :mod:`~pipeline.optvis.objectives`  what to maximise: channel, neuron, direction,
  diversity, their sums, products and negations, and :func:`per_item` batches
* :mod:`~pipeline.optvis.render`      the Adam loop, batched and truncated, with its knobs
  (steps, size, learning rate, seed, ...) in one :class:`~pipeline.optvis.render.RenderOptions`
* :mod:`~pipeline.optvis.speedup`     exact rewrites of the network before rendering many
  (BatchNorm folding, padding-free SAME convolutions, channels-last weights)

::

    from pipeline.optvis import objectives as obj
    from pipeline.optvis.render import RenderOptions, render
    result = render(model, obj.channel("blocks.3.0", 5) - 1e2 * obj.diversity("blocks.3.0"), 4,
                    RenderOptions(steps=256))

The package re-exports nothing: ``pipeline.optvis.render`` stays the module (a
re-exported ``render`` function would hide it).
"""
