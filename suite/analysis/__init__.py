"""Reading finished runs: compare, the paired gate, select's recommendation, explain."""
