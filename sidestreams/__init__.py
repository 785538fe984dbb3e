"""tickcast: side streams — macro series, news sentiment and sector returns joined as-of.

Data that is not a tick joins the feature vector by *publication* time, the same way live and
in training (``docs/side_streams.md``):

* :mod:`sidestreams.asof` — the point-in-time tables (latest published value and its age;
  decayed news sentiment), pure and O(1)/bounded per update;
* :mod:`sidestreams.sector` — equal-weight sector and market returns from the ticks;
* :mod:`sidestreams.features` — the side-feature columns and the state that computes them;
* :mod:`sidestreams.sources` — adapters (FRED JSON/CSV, statsmodels macrodata, news files);
* :mod:`sidestreams.frame` — the same join over a training frame.
"""
