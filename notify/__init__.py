"""Alert delivery to on-duty managers: rota, channels, acknowledgement and escalation."""
