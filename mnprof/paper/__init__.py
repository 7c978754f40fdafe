"""The paper's tables, computed: each number published | computed | delta, verdicts derived from the numbers."""
