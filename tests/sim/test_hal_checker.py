from hal.checker import CHECKERS
from hal.inventory import take_inventory
from hal.units import Node


def test_every_sim_arm_is_a_healthy_unit_found_through_the_entry_point():
    checker = CHECKERS.get("sim_robot")()
    inventory = take_inventory(Node("n1"), [checker])
    names = [e.unit.name for e in inventory.entries]
    assert names == ["sim:small_arm", "sim:so101"]
    assert all(e.health.ok for e in inventory.entries), inventory.entries
    assert inventory.get("sim:so101").unit.meta == {"arm": "so101", "joints": 5}
