"""Everything a person reads about an experiment: pure renderers of the analysis, plus the data they show.

``report``: the seed's Status Report and Statistical Analysis Report (Markdown). ``report_data``: what the
report-type commands show, built from an experiment's index data. ``terminal``: lines for a person watching and for
pipes. ``report_html`` and ``svg``: the single-file HTML report and its charts. ``report_png``: the plots drawn with
matplotlib (optional). ``history``: an experiment over time, for the plots. ``exports``: CSV and JSON exports.

May import: core, store, evidence, measure, reports
Never loads: scipy, numpy, matplotlib, rich
"""
