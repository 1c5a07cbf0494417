"""Ground-truth simulators: write canonical EHR tables and evaluate any policy against the truth."""
