"""Web pages served by the API: yield dashboard, roster, alert queue, part lookup."""
