"""A batch page of the COC API as the tests of flattening and paging read it."""

# the published example, verbatim, plus instances that stress the mapping
PAGE = b"""{"data": {"batch_index": 1, "total_instances": 4, "execute_instances": [
  {"id": 1588, "target_instance": {"resource_id": "resource_id", "agent_sn": "agent_sn",
   "agent_status": null, "region_id": null, "project_id": null,
   "properties": {"host_name": "host_name", "fixed_ip": "x.x.x.x", "floating_ip": null,
   "region_id": "cn-north-7", "zone_id": "cn-north-7c", "application": null, "group": null,
   "project_id": null}},
   "gmt_created": 1697946452436, "gmt_finished": 1697946763467, "execute_costs": 311031,
   "status": "CANCELED", "message": "Script execution result"},
  {"id": 1590, "target_instance": {"resource_id": "r2", "provider": "ECS", "type": "CLOUD_HOST",
   "region_id": "cn-east-3", "project_id": "p-outer",
   "custom_attributes": [{"key": "env", "value": "prod"}, {"key": "owner", "value": null}],
   "properties": {"host_name": "\\u4e3b\\u673a-01", "region_id": null, "group": "g1",
   "application": "billing", "project_id": "p-inner", "unknown": 1}},
   "gmt_created": 1697946452436, "gmt_finished": null, "execute_costs": null,
   "status": "PROCESSING", "message": "line 1\\nline 2"},
  {"id": 1591, "target_instance": null, "gmt_created": null, "gmt_finished": 5,
   "status": null, "message": null},
  {"id": 1592, "target_instance": {"custom_attributes": [], "properties": null},
   "status": "ROLLBACKED", "message": ""}
]}}"""
