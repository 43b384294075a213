"""Reports (wing ``report``): rich tables on the terminal, tidy result files, Markdown; and, from result files
read back, figures, comparisons and self-contained HTML reports.

In: result rows and summaries (from :mod:`..engine`), bits frames (from :mod:`..bits`), result files. Out: what
a person reads and what other tools read. Files: :mod:`.text` (number formats), :mod:`.sweep` (the sweep
tables), :mod:`.lowest_bits` (the ``--target`` report), :mod:`.bars` (bars per strength), :mod:`.ranking`
(per-layer sweeps: the layers ranked by the change of the metric), :mod:`.bits` (the bits table and files), :mod:`.files` (writing results by suffix, atomically),
:mod:`.console` (consoles and the progress bar); :mod:`.results` (reading result files back into rows, summary
and meta), :mod:`.columns` (metric columns, units, directions), :mod:`.figures` (matplotlib, palette, saving),
:mod:`.plots` (curves, frontier) and :mod:`.heatmap` (layers) for ``wrobust plot``; :mod:`.compare` (common
points, judged differences) and :mod:`.comparison` (its table and files) for ``wrobust compare``;
:mod:`.document` (the report's content), :mod:`.html`, :mod:`.markdown` and :mod:`.publish` for ``wrobust report``;
:mod:`.merge` (merging shard logs and result files) for ``wrobust merge``.
"""

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "text": ("pct", "num", "ci_text", "strength_text"),
    "sweep": ("render_sweep", "summary_markdown", "summary_tables", "layer_ranking"),
    "lowest_bits": ("lowest_bits_lines", "lowest_bits_markdown", "target_report", "check_targets"),
    "bars": ("bar", "bars"),
    "ranking": ("RankMetric", "rank_layers", "is_per_layer"),
    "bits": ("BITS_SUFFIXES", "render_bits", "bits_markdown", "write_bits"),
    "files": ("OUTPUT_SUFFIXES", "check_output_path", "atomic_write", "jsonable", "records", "write_results"),
    "console": ("stdout_console", "stderr_console", "progress_bar"),
    "results": ("RESULT_SUFFIXES", "ResultFile", "Series", "load_results", "load_all", "series_of", "summarize_rows"),
    "columns": ("Metric", "choose_metric", "metrics_in"),
    "figures": ("FIGURE_SUFFIXES", "OKABE_ITO", "save_figure"),
    "plots": ("KINDS", "figure", "plot_results", "pareto_front"),
    "heatmap": ("layer_changes", "layer_table"),
    "compare": ("Comparison", "compare", "where_better"),
    "comparison": ("COMPARE_SUFFIXES", "render_comparison", "comparison_markdown", "write_comparison"),
    "document": ("Report", "build_report"),
    "html": ("report_html",),
    "publish": ("REPORT_SUFFIXES", "write_report"),
    "merge": ("merge_files", "read_source", "Merged"),
})
