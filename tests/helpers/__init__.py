"""Shared test helpers: tiny models, data builders and the workflow runner.

Test modules import from here (and use conftest's fixtures), never from one another.
Workflow jobs import the models outside pytest, so this package imports nothing itself
and ``models``/``optvis_models`` import only torch (and timm).

    models         tiny hand-made classifiers, custom loaders ``tests.helpers.models:NAME``
                   (shared_relu_net, tiny_blocks_net, hand_net, square_net, tiny_conv_net,
                   tiny_featurevis_net, pool_net, field_net), and hand_net's expected values
    optvis_models  models for the optimisation engine (two_conv_net, stripe_net,
                   batchnorm_net, dead_unit_net, tf_style_net)
    stores         a fake run's activation shards and reduced store from known data
                   (build_store, write_shards, fake_data, fake_fields, brute_topk)
    images         broken image files (write_bad_files) and a labelled folder (plant_images)
    site           hand-made AtlasData with hostile text (synthetic_atlas, XSS_*, site_files)
    hierarchies    a hand-made eight-class hierarchy for the labels tests (TOY)
    workflow       running the real Snakemake workflow (run_workflow, tiny_config,
                   extract_config, run_on_two_cores)
"""
