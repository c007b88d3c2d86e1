"""Run dolite's Durable Object Worker locally under workerd (:mod:`.dev`) and the ``dolite cloudflare`` CLI (:mod:`.cli`)."""
