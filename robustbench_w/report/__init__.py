"""Reports (wing ``report``): rich tables on the terminal, tidy result files, Markdown.

In: result rows and summaries (from :mod:`..engine`), bits frames (from :mod:`..bits`). Out: what a person
reads and what other tools read. Files: :mod:`.text` (number formats), :mod:`.sweep` (the sweep tables),
:mod:`.bits` (the bits table and files), :mod:`.files` (writing results by suffix, atomically),
:mod:`.console` (consoles and the progress bar).
"""

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "text": ("pct", "ci_text", "strength_text"),
    "sweep": ("render_sweep", "summary_markdown", "summary_tables", "lowest_bits_lines", "lowest_bits_markdown"),
    "bits": ("BITS_SUFFIXES", "render_bits", "bits_markdown", "write_bits"),
    "files": ("OUTPUT_SUFFIXES", "check_output_path", "atomic_write", "jsonable", "records", "write_results"),
    "console": ("stdout_console", "stderr_console", "progress_bar"),
})
