"""Static files under hashed names once collected, so browsers may cache them for a year.

``collectstatic`` (each web node's install and upgrade step) writes every file under a name
carrying a hash of its content (``console.3f9c1b2e7a10.js``), compressed, and a manifest that
maps the plain names to them; ``{% static %}`` then writes the hashed names, and whitenoise
serves those with ``Cache-Control: max-age=315360000, public, immutable`` (a new release is a
new name). Before any ``collectstatic`` (``make run``, the test suite) there is no manifest:
the plain names are used and whitenoise serves them from the apps' folders with a short
max-age, instead of every page failing on a missing manifest entry.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest: collectstatic has not run here
            return name
        return super().stored_name(name)
