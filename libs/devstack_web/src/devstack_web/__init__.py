"""What both FastAPI reference apps share."""
