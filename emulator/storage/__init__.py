"""The registry store: blobs, uploads, manifests, tags and the catalog, built on a storage driver."""
