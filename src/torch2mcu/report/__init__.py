"""Reports: terminal tables (rich), plots and the HTML report."""
