"""HTTP resources: small classes with on_get/on_post/..., given what they need in __init__."""
