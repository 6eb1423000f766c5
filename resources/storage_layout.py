"""The storage layout as a Dagster resource (environment, optional TOML file, defaults)."""


import os

from dagster import ConfigurableResource

from contimg.layout import StorageLayout, resolve_layout


class StorageLayoutResource(ConfigurableResource):
    """Every location of the seed's architecture, validated and created on first use.

    Leave `config_file` unset to use `CONTIMG_CONFIG` from the environment.
    """

    config_file: str | None = None

    def layout(self) -> StorageLayout:
        """The resolved, validated layout (directories created)."""
        env = dict(os.environ)
        if self.config_file:
            env["CONTIMG_CONFIG"] = self.config_file
        return resolve_layout(env).ensure()
