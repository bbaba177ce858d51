/**
 * Disk and partition tools, and raw writes to block devices: one command erases a disk.
 * Listing (fdisk -l, parted -l, lsblk) is fine.
 */
import { describe, type RuleDef, ruleSet } from "../rule.js";

const BLOCK_DEVICE = /^\/dev\/(sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|rdisk\d|md\d|dm-\d|mapper\/|loop\d|nbd\d|sr\d|fd\d|mtd|mem$|kmem$|port$|root$|block\/)/;
const FORMATTERS = /^(mkfs(\..+)?|mke2fs|mkswap|mkntfs|mkdosfs|mkexfatfs|mkfs_.*|newfs(_.+)?|wipefs|blkdiscard|cfdisk|sgdisk|gdisk|fdisk|sfdisk|parted|zpool|mdadm|hdparm|lvremove|vgremove|pvremove|diskutil|cryptsetup|dmsetup|badblocks)$/;

export const DISK = ruleSet("disk", [
  {
    id: "partition-format",
    severity: "block",
    description: "formats, partitions, wipes or destroys a disk, volume or pool",
    invocation(inv) {
      const p = inv.program;
      if (!FORMATTERS.test(p)) return undefined;
      const args = inv.args.map((w) => w.text);
      if (args.length === 0 || args.some((a) => a === "--help" || a === "--version" || a === "-V")) return undefined;
      // Read-only uses of the same tools.
      if ((p === "fdisk" || p === "sfdisk" || p === "parted" || p === "gdisk" || p === "sgdisk") && args.some((a) => /^(-l|--list|-d|--dump|print|-p|--print)$/.test(a))) return undefined;
      if (p === "zpool" && !/^(destroy|labelclear|create|remove|detach|replace)$/.test(args[0] ?? "")) return undefined;
      if (p === "mdadm" && !args.some((a) => /^(--zero-superblock|--create|-C)$/.test(a))) return undefined;
      if (p === "hdparm" && !args.some((a) => /^--(security-erase|security-erase-enhanced|trim-sector-ranges|make-bad-sector|write-sector|dco-restore)/.test(a))) return undefined;
      if (p === "diskutil" && !/^(erase|zero|partition|secureerase|reformat|apfs)/i.test(args[0] ?? "")) return undefined;
      if (p === "cryptsetup" && !/^(luksformat|erase|luksErase|open)$/i.test(args[0] ?? "")) return undefined;
      if (p === "dmsetup" && !/^(remove|remove_all|wipe_table)$/.test(args[0] ?? "")) return undefined;
      if (p === "badblocks" && !args.some((a) => /^-[a-zA-Z]*w/.test(a))) return undefined;
      return inv.line;
    },
  },
  {
    id: "device-write",
    severity: "block",
    description: "writes to a raw disk or memory device (dd of=/dev/sda, > /dev/nvme0n1, shred /dev/sdb)",
    file(file) {
      return (file.op === "write" || file.op === "delete") && BLOCK_DEVICE.test(file.path) ? describe(file) : undefined;
    },
  },
  {
    id: "device-read",
    severity: "ask",
    description: "reads a raw disk or memory device (a whole disk's data)",
    file(file) {
      return file.op === "read" && BLOCK_DEVICE.test(file.path) && file.program === "dd" ? describe(file) : undefined;
    },
  },
] satisfies RuleDef[]);
