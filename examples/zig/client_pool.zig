//! 客户端对象池：启动时预热，之后按需取用和归还。

const std = @import("std");

pub const Client = struct {
    fd: std.posix.fd_t = -1,
    id: u64 = 0,
    keep_alive_s: u16 = 0,
    next_free: ?*Client = null,
};

pub const ClientPool = struct {
    allocator: std.mem.Allocator,
    free_list: ?*Client = null,
    free_count: usize = 0,
    in_use: usize = 0,

    pub fn init(allocator: std.mem.Allocator) ClientPool {
        return .{ .allocator = allocator };
    }

    /// 释放空闲链表中的对象；仍在使用的对象由调用方先归还。
    pub fn deinit(self: *ClientPool) void {
        while (self.free_list) |client| {
            self.free_list = client.next_free;
            self.allocator.destroy(client);
        }
        self.free_count = 0;
    }

    /// 预先分配 count 个客户端对象放入空闲链表。
    pub fn preheat(self: *ClientPool, count: usize) !void {
        for (0..count) |_| {
            const client = try self.allocator.create(Client);
            client.* = .{ .next_free = self.free_list };
            self.free_list = client;
            self.free_count += 1;
        }
    }

    pub fn acquire(self: *ClientPool) !*Client {
        if (self.free_list) |client| {
            self.free_list = client.next_free;
            self.free_count -= 1;
            self.in_use += 1;
            client.* = .{};
            return client;
        }
        // 空闲链表耗尽：直接分配新对象
        const client = try self.allocator.create(Client);
        client.* = .{};
        self.in_use += 1;
        return client;
    }

    pub fn release(self: *ClientPool, client: *Client) void {
        client.* = .{ .next_free = self.free_list };
        self.free_list = client;
        self.free_count += 1;
        self.in_use -= 1;
    }
};
