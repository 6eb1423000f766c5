"""The storage layout and the settings as a Dagster resource (one validated object)."""


import os

from dagster import ConfigurableResource

from contimg.layout import StorageLayout
from contimg.settings import Settings, load_settings


class StorageLayoutResource(ConfigurableResource):
    """Every location of the seed's architecture and every setting, validated at load.

    Leave `config_file` unset to use `CONTIMG_CONFIG` from the environment.
    """

    config_file: str | None = None

    def settings(self) -> Settings:
        """The validated settings (environment, then the TOML file, then defaults)."""
        env = dict(os.environ)
        if self.config_file:
            env["CONTIMG_CONFIG"] = self.config_file
        return load_settings(env)

    def layout(self) -> StorageLayout:
        """The resolved, validated layout (directories created)."""
        return self.settings().layout.ensure()
