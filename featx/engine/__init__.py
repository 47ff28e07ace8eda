"""The embed run: plan what is new (``fileindex``), decode it (``decode``, ``pixels``, ``workers``),
embed it (``extractor`` through an ``executor``, or ``ray``), commit it (``run``, ``views``)."""
