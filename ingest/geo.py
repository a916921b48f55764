"""Country, region and city from a MaxMind-format database (GEOIP_DATABASE_PATH), when configured."""

from __future__ import annotations

import geoip2.database
import geoip2.errors


class GeoIp:
    def __init__(self, path: str) -> None:
        self.reader = geoip2.database.Reader(path)

    def locate(self, ip: str) -> tuple[str, str, str]:
        try:
            found = self.reader.city(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return "", "", ""
        region = found.subdivisions.most_specific.iso_code if found.subdivisions else ""
        return found.country.iso_code or "", region or "", found.city.name or ""
